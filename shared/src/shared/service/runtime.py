"""The adapters a service process opens at start and closes at stop.

Each service's ``main.py`` builds one ``Runtime`` in its lifespan: it migrates the
schema (idempotent, serialized by an advisory lock), opens the connection pool and
the broker, declares the topology, and runs the relay as a background task (only
the replica holding the relay lock publishes).
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

import psycopg_pool
from faststream.rabbit import Channel, RabbitBroker

from shared.domain.retry import RetryPolicy
from shared.eventstore.checkpoints import Checkpoints
from shared.eventstore.follower import Follower, Handle
from shared.eventstore.orders import Orders
from shared.eventstore.pool import open_pool
from shared.eventstore.postgres import PostgresEventStore
from shared.messaging.relay import Relay
from shared.messaging.topology import Topology, declare_topology
from shared.migrations import migrate
from shared.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    pool: psycopg_pool.AsyncConnectionPool
    store: PostgresEventStore
    orders: Orders
    broker: RabbitBroker
    topology: Topology
    checkpoints: Checkpoints
    relay: Relay | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        self.tasks.append(asyncio.create_task(coroutine, name=name))

    def follow(self, subscriber: str, handle: Handle) -> Follower:
        """Run a leader-elected follower of the store in the background."""
        follower = Follower(
            subscriber=subscriber,
            conninfo=self.settings.database_url,
            store=self.store,
            checkpoints=self.checkpoints,
            handle=handle,
            poll_s=self.settings.relay_poll_ms / 1000,
        )
        self.spawn(follower.run(), subscriber)
        return follower

    async def readiness(self) -> dict[str, bool]:
        checks = {"store": False, "broker": False}
        with contextlib.suppress(Exception):
            async with self.pool.connection(timeout=2) as conn:
                await conn.execute("SELECT 1")
            checks["store"] = True
        with contextlib.suppress(Exception):
            checks["broker"] = bool(await self.broker.ping(timeout=2))
        return checks


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        base_delay_ms=settings.backoff_base_ms,
        max_delay_ms=settings.backoff_max_ms,
        jitter=settings.backoff_jitter,
    )


def make_broker(settings: Settings, *, prefetch: int) -> RabbitBroker:
    return RabbitBroker(
        settings.amqp_url,
        default_channel=Channel(prefetch_count=prefetch, publisher_confirms=True),
        graceful_timeout=20,
        logger=logging.getLogger("faststream"),
        log_level=logging.DEBUG,
    )


@contextlib.asynccontextmanager
async def running(settings: Settings, broker: RabbitBroker) -> AsyncIterator[Runtime]:
    """Open every adapter, yield the runtime, close everything in reverse order."""
    await asyncio.to_thread(migrate, settings.database_url)
    pool = open_pool(settings.database_url, min_size=1, max_size=settings.db_pool_size)
    await pool.open(wait=True)
    store = PostgresEventStore(pool)
    topology = Topology(
        settings.broker_namespace, delivery_limit=settings.delivery_limit
    )
    runtime = Runtime(
        settings=settings,
        pool=pool,
        store=store,
        orders=Orders(store),
        broker=broker,
        topology=topology,
        checkpoints=Checkpoints(pool),
    )
    try:
        await broker.connect()
        await declare_topology(broker, topology)
        if settings.relay_enabled:
            runtime.relay = Relay(
                settings=settings,
                store=store,
                checkpoints=runtime.checkpoints,
                topology=topology,
            )
            runtime.spawn(runtime.relay.run(), "relay")
        yield runtime
    finally:
        for task in runtime.tasks:
            task.cancel()
        await asyncio.gather(*runtime.tasks, return_exceptions=True)
        await broker.stop()
        await pool.close()
