"""The adapters a service process opens at start and closes at stop.

Each service's ``main.py`` builds one ``Runtime`` in its lifespan: it migrates the
schema (idempotent, serialized by an advisory lock), opens the connection pool and
the broker, declares the topology, and runs the relay as a background task (only
the replica holding the relay lock publishes). A sampler task refreshes the gauges
that describe the log and the queues (relay and projection lag, queue depth) once a
second, so nothing on the hot path queries anything for metrics.
"""

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aio_pika.abc import AbstractRobustChannel
from faststream.rabbit import Channel, RabbitBroker
from faststream.rabbit.subscriber import RabbitSubscriber

from shared import metrics
from shared.domain.retry import RetryPolicy
from shared.eventstore.checkpoints import Checkpoints
from shared.eventstore.follower import Follower, Handle
from shared.eventstore.orders import Orders
from shared.eventstore.pool import Pool, open_pool
from shared.eventstore.postgres import PostgresEventStore
from shared.messaging.relay import Relay
from shared.messaging.topology import Topology, declare_topology
from shared.migrations import migrate
from shared.settings import Settings

logger = logging.getLogger(__name__)

SAMPLE_EVERY_S = 1.0
QUEUE_SAMPLE_EVERY = 5  # samples: passive declares every 5 s
_CHECK_TIMEOUT_S = 2.0
# How long a stopping service waits for the deliveries in hand to finish (an
# executor's swap landing, say) before it closes the broker connection and they
# are redelivered. A supervisor's stop grace period must be longer.
GRACEFUL_STOP_S = 20
BROKER_CONNECT_TIMEOUT_S = 5.0
POOL_CLOSE_S = 2.0


@dataclass(frozen=True, slots=True)
class QueueState:
    messages: int
    consumers: int


@dataclass
class Runtime:
    settings: Settings
    pool: Pool
    store: PostgresEventStore
    orders: Orders
    broker: RabbitBroker
    topology: Topology
    checkpoints: Checkpoints
    relay: Relay | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    followers: list[Follower] = field(default_factory=list)
    subscribers: list[RabbitSubscriber] = field(default_factory=list)
    _monitor: AbstractRobustChannel | None = None

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        self.tasks.append(asyncio.create_task(coroutine, name=name))

    def follow(self, subscriber: str, handle: Handle) -> Follower:
        """Run a leader-elected follower of the store, as stored, in the background."""
        follower = Follower(
            subscriber=subscriber,
            conninfo=self.settings.database_url,
            store=self.store,
            checkpoints=self.checkpoints,
            handle=handle,
            poll_s=self.settings.relay_poll_ms / 1000,
            linger_s=self.settings.projection_linger_ms / 1000,
        )
        self.spawn(follower.run(), subscriber)
        self.followers.append(follower)
        return follower

    def consuming(self, subscriber: RabbitSubscriber) -> None:
        """Register a started-or-about-to-start subscriber for readiness checks."""
        self.subscribers.append(subscriber)

    async def readiness(self) -> dict[str, bool]:
        """Store and broker reachable; background work alive; subscribers consuming.

        ``background`` is true while every spawned task (relay, followers, sampler,
        a service's own loops) still runs: they loop forever, so one that ended
        has failed and the process needs a restart. ``consumers`` (services that
        consume only) is true when each subscriber is
        running with a consumer tag and a passive declare of its queue reports at
        least one consumer. After a broker restart a consumer may not come back
        (FastStream issue #2758) while the connection does: this check catches it.
        """
        checks = {"store": False, "broker": False}
        with contextlib.suppress(Exception):
            async with self.pool.connection(timeout=_CHECK_TIMEOUT_S) as conn:
                await conn.execute("SELECT 1")
            checks["store"] = True
        with contextlib.suppress(Exception):
            checks["broker"] = bool(await self.broker.ping(timeout=_CHECK_TIMEOUT_S))
        checks["background"] = not any(task.done() for task in self.tasks)
        if self.subscribers:
            checks["consumers"] = checks["broker"] and await self._consumers_attached()
        return checks

    async def _consumers_attached(self) -> bool:
        for subscriber in self.subscribers:
            # The FastStream attribute is private; None means it never consumed.
            if not subscriber.running or subscriber._consumer_tag is None:  # noqa: SLF001
                return False
            state = await self.queue_state(subscriber.queue.name)
            if state is None or state.consumers < 1:
                return False
        return True

    async def queue_state(self, queue: str) -> QueueState | None:
        """Ready messages and consumers of ``queue`` (a passive declare), or None.

        Runs on a channel of its own on the broker's connection (an exclusive queue
        is only visible there); a failed declare closes only that channel.
        """
        try:
            # Bounded as a whole: a robust channel waits for a reconnect unbounded.
            async with asyncio.timeout(_CHECK_TIMEOUT_S):
                channel = self._monitor
                if channel is None or channel.is_closed:
                    connection = await self.broker.connect()
                    channel = self._monitor = await connection.channel(
                        publisher_confirms=False
                    )
                declared = await channel.declare_queue(
                    queue, passive=True, robust=False
                )
        except Exception:
            logger.debug("passive declare of %s failed", queue, exc_info=True)
            return None
        result = declared.declaration_result
        state = QueueState(
            messages=int(result.message_count or 0),
            consumers=int(result.consumer_count or 0),
        )
        metrics.QUEUE_MESSAGES.labels(queue).set(state.messages)
        metrics.QUEUE_CONSUMERS.labels(queue).set(state.consumers)
        return state

    async def sample(self) -> None:
        """Refresh the sampled gauges forever (one background task per process)."""
        tick = 0
        while True:
            with contextlib.suppress(Exception):
                await self._sample_log()
            if tick % QUEUE_SAMPLE_EVERY == 0:
                for subscriber in self.subscribers:
                    await self.queue_state(subscriber.queue.name)
            tick += 1
            await asyncio.sleep(SAMPLE_EVERY_S)

    async def _sample_log(self) -> None:
        subscribers = [f.subscriber for f in self.followers]
        if self.relay is not None:
            subscribers.append(self.relay.subscriber)
            metrics.RELAY_LEADER.set(1 if self.relay.is_leader else 0)
        head = await self.store.head_position()
        positions = await self.checkpoints.positions(subscribers)
        metrics.STORE_HEAD.set(head)
        if self.relay is not None:
            lag = head - positions.get(self.relay.subscriber, 0)
            metrics.RELAY_LAG.set(max(0, lag))
        for follower in self.followers:
            lag = head - positions.get(follower.subscriber, 0)
            metrics.PROJECTION_LAG.labels(follower.subscriber).set(max(0, lag))


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        base_delay_ms=settings.backoff_base_ms,
        max_delay_ms=settings.backoff_max_ms,
        jitter=settings.backoff_jitter,
    )


def make_broker(settings: Settings, *, prefetch: int) -> RabbitBroker:
    """The service's broker. Handlers take the raw message and settle it themselves
    (``shared.messaging.delivery``), so FastStream's dependency injection is off: it
    would resolve the message argument in a worker thread for every delivery.
    """
    return RabbitBroker(
        settings.amqp_url,
        # A broker that takes the connection but never answers (a blackholed
        # address, a half-dead node) is an error in seconds, as PostgreSQL's
        # connect_timeout makes it, not a start stalled for minutes.
        timeout=BROKER_CONNECT_TIMEOUT_S,
        apply_types=False,
        default_channel=Channel(prefetch_count=prefetch, publisher_confirms=True),
        graceful_timeout=GRACEFUL_STOP_S,
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
        runtime.spawn(runtime.sample(), "metrics-sampler")
        # What exists now (modules, app, adapters) lives as long as the process:
        # freezing it keeps the garbage collector's full passes to what handling
        # creates. A full pass over the startup heap stalls the event loop for
        # tens of milliseconds, every order in flight with it.
        gc.collect()
        gc.freeze()
        yield runtime
    finally:
        # Deliveries first: one still being handled may wait on the service's own
        # loops (the executor's confirmation poller, the chain's lander) and on
        # the relay to publish what it records. Cancelled first, they would leave
        # it waiting out the graceful timeout, to be redelivered after the exit.
        await _stop_consuming(broker)
        # What is still in hand has had its graceful timeout: the broker's own
        # stop would wait for it as long again, outliving a container's stop
        # grace (30 s) to be killed. It comes back redelivered either way.
        broker.config.broker_config.graceful_timeout = None
        for task in runtime.tasks:
            task.cancel()
        await asyncio.gather(*runtime.tasks, return_exceptions=True)
        if runtime._monitor is not None and not runtime._monitor.is_closed:  # noqa: SLF001
            with contextlib.suppress(Exception):
                await runtime._monitor.close()  # noqa: SLF001
        await broker.stop()
        # Bounded, as every wait of a stop is: 5 s cancel, 20 s graceful, 2 s here
        # stay inside a container's 30 s stop grace.
        await pool.close(timeout=POOL_CLOSE_S)


async def _stop_consuming(broker: RabbitBroker) -> None:
    """Take no new deliveries; wait (up to the graceful timeout) for those in hand.

    The consumers are cancelled first. FastStream's own stop only stops handling:
    the broker goes on sending, one delivery per acknowledgement, and each is left
    unsettled until the connection closes. It would come back redelivered, counted
    towards the queue's delivery limit, once per stop.
    """
    subscribers = broker.subscribers
    results = await asyncio.gather(
        *(_cancel_consumer(subscriber) for subscriber in subscribers),
        return_exceptions=True,
    )
    # Deliveries the broker sent before it took the cancel are still passing
    # through aiormq's and aio-pika's tasks; stopped now, FastStream would drop them.
    await asyncio.sleep(_SETTLE_S)
    results += await asyncio.gather(
        *(subscriber.stop() for subscriber in subscribers),
        return_exceptions=True,
    )
    for error in results:
        if isinstance(error, Exception):
            logger.warning("a subscriber did not stop cleanly", exc_info=error)


_SETTLE_S = 0.05
_CANCEL_TIMEOUT_S = 5.0
"""A channel that does not confirm a cancel in this long is not waited for: the
stop goes on, and what that consumer still gets comes back after the exit."""


async def _cancel_consumer(subscriber: object) -> None:
    # FastStream keeps the queue and the consumer tag private, and has no call
    # that cancels a consumer without also ending its handling.
    if not isinstance(subscriber, RabbitSubscriber):
        return
    queue, tag = subscriber._queue_obj, subscriber._consumer_tag  # noqa: SLF001
    if queue is None or tag is None or queue.channel.is_closed:
        return
    await queue.cancel(tag, timeout=_CANCEL_TIMEOUT_S)
    subscriber._consumer_tag = None  # noqa: SLF001 - its stop would cancel it again
