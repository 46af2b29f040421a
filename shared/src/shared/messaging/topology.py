"""Every exchange, queue and routing key of the system, declared in one place.

- ``<ns>.events``: durable topic exchange, the relay is its only publisher. Routing
  key ``order.<EventType>``. Unroutable messages go to ``<ns>.unrouted`` through the
  exchange's alternate exchange, so nothing vanishes silently.
- ``<ns>.router`` and ``<ns>.executor``: durable quorum work queues with competing
  consumers, a delivery limit and at-least-once dead-lettering to ``<ns>.parking``.
- ``<ns>.notifier.<replica>``: one exclusive, auto-deleted queue per notifier
  replica; what it misses while down is filled from the store.
"""

from dataclasses import dataclass

from aio_pika.abc import AbstractRobustExchange
from aiormq.exceptions import ChannelPreconditionFailed
from faststream.rabbit import (
    ExchangeType,
    QueueType,
    RabbitBroker,
    RabbitExchange,
    RabbitQueue,
)
from faststream.rabbit.schemas.queue import QuorumQueueArgs

ROUTER_EVENTS: tuple[str, ...] = ("OrderAccepted", "RetryScheduled")
EXECUTOR_EVENTS: tuple[str, ...] = ("RouteSelected",)
# Bound by earlier versions and no longer consumed: unbound at every start so a
# broker declared by an older release stops filling the queue with them.
RETIRED_EXECUTOR_EVENTS: tuple[str, ...] = ("TransactionSubmitted",)


def routing_key(event_type: str) -> str:
    return f"order.{event_type}"


ALL_ORDER_EVENTS = "order.#"


@dataclass(frozen=True, slots=True)
class Topology:
    namespace: str
    delivery_limit: int = 5

    @property
    def events(self) -> RabbitExchange:
        return RabbitExchange(
            f"{self.namespace}.events",
            type=ExchangeType.TOPIC,
            durable=True,
            arguments={"alternate-exchange": self.unrouted_exchange.name},
        )

    @property
    def unrouted_exchange(self) -> RabbitExchange:
        return RabbitExchange(f"{self.namespace}.unrouted", type=ExchangeType.FANOUT)

    @property
    def unrouted(self) -> RabbitQueue:
        return RabbitQueue(
            f"{self.namespace}.unrouted", queue_type=QueueType.QUORUM, durable=True
        )

    @property
    def dead_letters(self) -> RabbitExchange:
        return RabbitExchange(f"{self.namespace}.dlx", type=ExchangeType.FANOUT)

    @property
    def parking(self) -> RabbitQueue:
        return RabbitQueue(
            f"{self.namespace}.parking", queue_type=QueueType.QUORUM, durable=True
        )

    def _work_queue(self, service: str) -> RabbitQueue:
        arguments: QuorumQueueArgs = {
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": self.dead_letters.name,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
        return RabbitQueue(
            f"{self.namespace}.{service}",
            queue_type=QueueType.QUORUM,
            durable=True,
            arguments=arguments,
        )

    @property
    def router(self) -> RabbitQueue:
        return self._work_queue("router")

    @property
    def executor(self) -> RabbitQueue:
        return self._work_queue("executor")

    def notifier(self, replica: str) -> RabbitQueue:
        return RabbitQueue(
            f"{self.namespace}.notifier.{replica}",
            durable=False,
            exclusive=True,
            auto_delete=True,
            routing_key=ALL_ORDER_EVENTS,
            # What a notifier cannot read is parked for a human, not dropped.
            arguments={"x-dead-letter-exchange": self.dead_letters.name},
        )


class TopologyMismatchError(Exception):
    """A work queue exists with other arguments than this release declares."""

    def __init__(self, queue: str, error: Exception) -> None:
        advice = (
            " Its x-delivery-limit comes from DELIVERY_LIMIT, fixed when the queue"
            " was created: set DELIVERY_LIMIT back to the queue's value, or delete"
            " the queue once it is empty to create it with the new one"
            if "x-delivery-limit" in str(error)
            else " Delete the queue once it is empty to create it as this release does"
        )
        super().__init__(
            f"queue {queue} exists with other arguments than this service declares"
            f" ({error}).{advice}"
        )


async def declare_topology(
    broker: RabbitBroker, topology: Topology
) -> AbstractRobustExchange:
    """Declare the shared exchanges and work queues with their bindings (idempotent).

    Every service calls this at start, so whichever starts first creates the same
    topology, its arguments all from ``Topology``. A queue made earlier with other
    arguments (another DELIVERY_LIMIT) is refused by the broker:
    ``TopologyMismatchError`` says which setting to set back.
    """
    unrouted_exchange = await broker.declare_exchange(topology.unrouted_exchange)
    unrouted = await broker.declare_queue(topology.unrouted)
    await unrouted.bind(unrouted_exchange)
    dead_letters = await broker.declare_exchange(topology.dead_letters)
    parking = await broker.declare_queue(topology.parking)
    await parking.bind(dead_letters)
    events = await broker.declare_exchange(topology.events)
    for queue, event_types, retired in (
        (topology.router, ROUTER_EVENTS, ()),
        (topology.executor, EXECUTOR_EVENTS, RETIRED_EXECUTOR_EVENTS),
    ):
        try:
            declared = await broker.declare_queue(queue)
        except ChannelPreconditionFailed as error:
            raise TopologyMismatchError(queue.name, error) from error
        for event_type in event_types:
            await declared.bind(events, routing_key=routing_key(event_type))
        for event_type in retired:  # unbinding a missing binding is a no-op
            await declared.unbind(events, routing_key=routing_key(event_type))
    return events
