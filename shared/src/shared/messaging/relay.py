"""The relay: the only path from the event store to RabbitMQ.

The append is the only write a handler makes; the relay follows the store by
global position and publishes each event with publisher confirms, advancing its
checkpoint only after every event of the batch is confirmed (at-least-once). The
checkpoint is written at most every ``RELAY_CHECKPOINT_MS``, not once per batch:
at one order at a time a batch is one event, and its checkpoint would cost as much
as its read. A new leader republishes what was confirmed but not yet checkpointed;
consumers take duplicates in their stride. It is a leader-elected follower, so one
relay publishes at a time wherever replicas run. Events of one order are published
in stream order; different orders concurrently.
"""

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from uuid import UUID

import aio_pika
from aio_pika.abc import AbstractExchange

from shared.eventstore.checkpoints import Checkpoints
from shared.eventstore.follower import Follower
from shared.eventstore.port import EventStore, RawEvent
from shared.messaging.topology import Topology, routing_key
from shared.metrics import RELAY_PUBLISHED
from shared.postgres.leadership import lock_key
from shared.settings import Settings

logger = logging.getLogger(__name__)


def to_message(event: RawEvent) -> aio_pika.Message:
    """The event's envelope as stored, with what brokers and consumers route by."""
    return aio_pika.Message(
        body=event.envelope_json.encode(),
        content_type="application/json",
        message_id=str(event.event_id),
        correlation_id=str(event.correlation_id),
        type=event.type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers={
            "order-id": str(event.order_id),
            "stream-version": event.stream_version,
            "global-position": event.global_position,
        },
    )


def relay_subscriber(namespace: str) -> str:
    return f"relay:{namespace}"


def relay_lock_key(namespace: str) -> int:
    """The advisory lock only the active relay of ``namespace`` holds."""
    return lock_key(relay_subscriber(namespace))


class Relay:
    def __init__(
        self,
        *,
        settings: Settings,
        store: EventStore,
        checkpoints: Checkpoints,
        topology: Topology,
    ) -> None:
        self._settings = settings
        self._checkpoints = checkpoints
        self._topology = topology
        self._slots = asyncio.Semaphore(settings.relay_publish_concurrency)
        self._exchange: AbstractExchange | None = None
        self._confirmed = 0
        self._checkpointing: asyncio.Task[None] | None = None
        self.subscriber = relay_subscriber(topology.namespace)
        self.follower = Follower(
            subscriber=self.subscriber,
            conninfo=settings.database_url,
            store=store,
            checkpoints=checkpoints,
            handle=self._publish_batch,
            poll_s=settings.relay_poll_ms / 1000,
            batch_size=settings.relay_batch_size,
        )

    @property
    def is_leader(self) -> bool:
        return self.follower.is_leader

    async def run(self) -> None:
        while True:
            try:
                connection = await aio_pika.connect_robust(self._settings.amqp_url)
                async with connection:
                    channel = await connection.channel(
                        publisher_confirms=True, on_return_raises=True
                    )
                    self._exchange = await channel.get_exchange(
                        self._topology.events.name, ensure=True
                    )
                    await self.follower.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("relay cannot reach the broker; retrying")
            await asyncio.sleep(1.0)

    async def _publish_batch(self, batch: Sequence[RawEvent]) -> None:
        exchange = self._exchange
        if exchange is None:  # pragma: no cover - run() sets it before following
            raise RuntimeError("relay is not connected")
        by_order: dict[UUID, list[RawEvent]] = defaultdict(list)
        for event in batch:
            by_order[event.order_id].append(event)
        async with asyncio.TaskGroup() as group:
            for events in by_order.values():
                group.create_task(self._publish_in_order(exchange, events))
        self._confirmed = batch[-1].global_position
        if self._checkpointing is None or self._checkpointing.done():
            self._checkpointing = asyncio.create_task(self._checkpoint_soon())

    async def _checkpoint_soon(self) -> None:
        """Record the confirmed position once the interval has passed.

        Only confirmed positions are written and a checkpoint never moves back, so
        a write that outlives this process's leadership is harmless. Batches
        confirmed while a write is under way are written by the next round: the
        task ends only once what it wrote is the latest confirmed position.
        """
        written, failing = 0, False
        while written < self._confirmed:
            await asyncio.sleep(self._settings.relay_checkpoint_ms / 1000)
            position = self._confirmed
            try:
                await self._checkpoints.advance(self.subscriber, position)
            except Exception:
                # Until it is recorded, a failover republishes a little more. One
                # line per outage, not one per try.
                if not failing:
                    logger.warning(
                        "relay checkpoint not recorded; retrying", exc_info=True
                    )
                failing = True
            else:
                written = position

    async def _publish_in_order(
        self, exchange: AbstractExchange, events: Sequence[RawEvent]
    ) -> None:
        async with self._slots:
            for event in events:
                await exchange.publish(
                    to_message(event),
                    routing_key=routing_key(event.type),
                    mandatory=True,
                )
                RELAY_PUBLISHED.inc()
