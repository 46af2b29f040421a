"""The relay: the only path from the event store to RabbitMQ.

The append is the only write a handler makes; the relay tails the store by global
position and publishes each event with publisher confirms, advancing its
checkpoint only after every event of the batch is confirmed (at-least-once). One
relay is active at a time, wherever it runs: replicas compete for a PostgreSQL
advisory lock held by a dedicated session, so a killed leader hands over as soon
as its connection drops. Events of one order are published in stream order;
different orders are published concurrently.
"""

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from uuid import UUID

import aio_pika
import psycopg
from aio_pika.abc import AbstractExchange

from shared.domain.envelope import EventEnvelope
from shared.eventstore.checkpoints import Checkpoints
from shared.eventstore.leadership import leadership, still_leader
from shared.eventstore.listener import StoreWakeups
from shared.eventstore.port import EventStore
from shared.messaging.topology import Topology, routing_key
from shared.settings import Settings

logger = logging.getLogger(__name__)

RELAY_LOCK_KEY = 0x6F652D72656C6179  # "oe-relay"
CHECKPOINT = "relay:rabbitmq"


def to_message(envelope: EventEnvelope) -> aio_pika.Message:
    return aio_pika.Message(
        body=envelope.model_dump_json(by_alias=True).encode(),
        content_type="application/json",
        message_id=str(envelope.event_id),
        correlation_id=str(envelope.correlation_id),
        type=envelope.type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers={
            "order-id": str(envelope.order_id),
            "stream-version": envelope.stream_version,
            "global-position": envelope.global_position,
        },
    )


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
        self._store = store
        self._checkpoints = checkpoints
        self._topology = topology
        self._slots = asyncio.Semaphore(settings.relay_publish_concurrency)
        self.published = 0
        self.is_leader = False

    async def run(self) -> None:
        """Compete for leadership forever; publish while leader."""
        while True:
            try:
                await self._lead_when_possible()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception(
                    "relay stopped; retrying", extra={"kind": "relay_error"}
                )
            self.is_leader = False
            await asyncio.sleep(1.0)

    async def _lead_when_possible(self) -> None:
        async with leadership(self._settings.database_url, RELAY_LOCK_KEY) as session:
            self.is_leader = True
            logger.info("relay is leader", extra={"kind": "relay_leader"})
            await self._publish_forever(session)

    async def _publish_forever(
        self, session: psycopg.AsyncConnection[tuple[object, ...]]
    ) -> None:
        connection = await aio_pika.connect_robust(self._settings.amqp_url)
        async with connection, StoreWakeups(self._settings.database_url) as wakeups:
            channel = await connection.channel(
                publisher_confirms=True, on_return_raises=True
            )
            exchange = await channel.get_exchange(
                self._topology.events.name, ensure=True
            )
            position = await self._checkpoints.get(CHECKPOINT)
            poll = self._settings.relay_poll_ms / 1000
            while True:
                batch = await self._store.read_all(
                    position, self._settings.relay_batch_size
                )
                if not batch:
                    # A dead session means another relay may lead now: stop.
                    await still_leader(session)
                    await wakeups.wait(poll)
                    continue
                await self._publish(exchange, batch)
                position = batch[-1].global_position
                await self._checkpoints.advance(CHECKPOINT, position)
                self.published += len(batch)

    async def _publish(
        self, exchange: AbstractExchange, batch: Sequence[EventEnvelope]
    ) -> None:
        by_order: dict[UUID, list[EventEnvelope]] = defaultdict(list)
        for envelope in batch:
            by_order[envelope.order_id].append(envelope)
        async with asyncio.TaskGroup() as group:
            for envelopes in by_order.values():
                group.create_task(self._publish_in_order(exchange, envelopes))

    async def _publish_in_order(
        self, exchange: AbstractExchange, envelopes: Sequence[EventEnvelope]
    ) -> None:
        async with self._slots:
            for envelope in envelopes:
                await exchange.publish(
                    to_message(envelope),
                    routing_key=routing_key(envelope.type),
                    mandatory=True,
                )
