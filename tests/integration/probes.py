"""Look inside a running system: who holds the relay lock, the broker, the chain.

Used by the delivery and crash-recovery tests. Most helpers only read what a
running system leaves in PostgreSQL, RabbitMQ and /proc; ``publish``,
``get_matching`` (takes one message), ``kill`` and ``restart`` change it.
"""

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from uuid import UUID

import aio_pika
import httpx
import psycopg
from aio_pika.abc import AbstractIncomingMessage
from prometheus_client.parser import text_string_to_metric_families

from shared.domain.envelope import EventEnvelope
from shared.eventstore.pool import Pool, open_pool
from shared.eventstore.postgres import PostgresEventStore
from shared.messaging import relay
from tests.integration.system import System
from tools.leaders import lock_holder, lock_holders

HAPPY_PATH = ["pending", "routing", "building", "submitted", "confirmed"]
HAPPY_EVENTS = [
    "OrderAccepted",
    "RoutingStarted",
    "RouteSelected",
    "TransactionSubmitted",
    "SwapConfirmed",
]
TERMINAL = {"confirmed", "failed"}
ORDER = {"amount": 10, "tokenPair": "SOL-USDC", "type": "market"}

# --- PostgreSQL -------------------------------------------------------------------


def query(system: System, sql: str, params: tuple[object, ...] = ()) -> list[Any]:
    with psycopg.connect(system.env["DATABASE_URL"], autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def logins(database_url: str) -> set[tuple[str, str]]:
    """(application_name, login role) of every other session on that database."""
    dbname = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT DISTINCT application_name, usename FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        ).fetchall()
    return {(str(name), str(user)) for name, user in rows}


def relay_key(system: System) -> int:
    """The relay's advisory lock key (one per broker namespace)."""
    return relay.relay_lock_key(system.env["BROKER_NAMESPACE"])


def relay_lock_holders(system: System) -> list[tuple[int, int]]:
    """(backend pid, client port) of every session holding the relay lock."""
    return lock_holders(system, relay_key(system))


def landed_swaps(system: System, order_id: str) -> list[tuple[str, bool]]:
    """(signature, ok) of every swap of this order that landed on the chain."""
    return query(
        system,
        "SELECT signature, ok FROM chain.ledger"
        " WHERE kind = 'order' AND order_id = %s ORDER BY id",
        (order_id,),
    )


def sent_transactions(system: System, order_id: str) -> list[str]:
    """Signatures of every transaction of this order the chain ever received."""
    rows = query(
        system,
        "SELECT signature FROM chain.transactions WHERE order_id = %s",
        (order_id,),
    )
    return [signature for (signature,) in rows]


@contextlib.asynccontextmanager
async def event_store(system: System) -> AsyncIterator[PostgresEventStore]:
    pool = open_pool(system.env["DATABASE_URL"], min_size=1, max_size=2)
    await pool.open(wait=True)
    try:
        yield PostgresEventStore(pool)
    finally:
        await pool.close()


async def backend_of(pool: Pool) -> int:
    """The server process behind the connection ``pool`` lends next."""
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT pg_backend_pid()")
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def history(system: System, order_id: str) -> list[EventEnvelope]:
    async with event_store(system) as store:
        return await store.read_stream(UUID(order_id))


def relay_leader(system: System, *, timeout: float = 10) -> str:
    """The service whose process holds the relay lock (waits for one to hold it)."""
    lock = relay.relay_subscriber(system.env["BROKER_NAMESPACE"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        service = lock_holder(system, lock)
        if service is not None:
            return service
        time.sleep(0.1)
    holders = relay_lock_holders(system)
    raise AssertionError(f"no single service holds the relay lock: {holders}")


# --- Processes ---------------------------------------------------------------------


@contextlib.contextmanager
def restored(system: System, *services: str) -> Iterator[None]:
    """Whatever happens inside, leave ``services`` running and ready afterwards."""
    try:
        yield
    finally:
        for service in services:
            process = system.processes.get(service)
            if process is None or process.poll() is not None:
                system.processes.pop(service, None)
                system.start(service)
        for service in services:
            system.wait_ready(service)


def kill(system: System, service: str) -> None:
    """SIGKILL: no shutdown hook runs, in-flight deliveries are not acknowledged."""
    assert system.stop(service, signal.SIGKILL) == -signal.SIGKILL


async def restart(system: System, service: str) -> None:
    system.start(service)
    await asyncio.to_thread(system.wait_ready, service)


# --- HTTP ---------------------------------------------------------------------------


async def order_status(system: System, order_id: str) -> str:
    async with httpx.AsyncClient(base_url=system.base_url, timeout=5) as client:
        answer = await client.get(f"/api/orders/{order_id}")
        answer.raise_for_status()
        return str(answer.json()["status"])


async def wait_all(
    system: System, order_ids: list[str], statuses: set[str], *, timeout: float
) -> dict[str, str]:
    """Poll until every order has one of ``statuses``; fail naming the stragglers."""
    last: dict[str, str] = {}
    try:
        async with asyncio.timeout(timeout):
            while True:
                for order_id in order_ids:
                    last[order_id] = await order_status(system, order_id)
                if all(last[o] in statuses for o in order_ids):
                    return last
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(
            f"not all orders reached {statuses} in {timeout}s: {last}"
        ) from None


async def event_types(system: System, order_id: str) -> list[str]:
    async with httpx.AsyncClient(base_url=system.base_url, timeout=5) as client:
        answer = await client.get(f"/api/orders/{order_id}/events")
        answer.raise_for_status()
        return [e["type"] for e in answer.json()["events"]]


# --- RabbitMQ -----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def amqp_channel(system: System) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(system.env["AMQP_URL"])
    async with connection:
        yield await connection.channel(publisher_confirms=True)


def name(system: System, suffix: str) -> str:
    return f"{system.env['BROKER_NAMESPACE']}.{suffix}"


async def publish(system: System, message: aio_pika.Message, routing_key: str) -> None:
    """Publish to ``<ns>.events`` and wait for the broker's confirm."""
    async with amqp_channel(system) as channel:
        exchange = await channel.get_exchange(name(system, "events"), ensure=True)
        await exchange.publish(message, routing_key=routing_key, mandatory=True)


async def ready_messages(system: System, queue: str) -> int:
    async with amqp_channel(system) as channel:
        declared = await channel.declare_queue(name(system, queue), passive=True)
        return int(declared.declaration_result.message_count or 0)


async def get_matching(
    system: System,
    queue: str,
    matches: Callable[[AbstractIncomingMessage], bool],
    *,
    timeout: float,
) -> AbstractIncomingMessage:
    """Take the first message of ``<ns>.<queue>`` that ``matches``.

    Messages that do not match stay unacknowledged until the end (so ``get`` moves
    past them) and then go back to the queue.
    """
    async with amqp_channel(system) as channel:
        declared = await channel.declare_queue(name(system, queue), passive=True)
        others: list[AbstractIncomingMessage] = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    message = await declared.get(fail=False, no_ack=False)
                    if message is None:
                        await asyncio.sleep(0.1)
                    elif matches(message):
                        await message.ack()
                        return message
                    else:
                        others.append(message)
        except TimeoutError:
            raise AssertionError(
                f"no matching message in {declared.name} within {timeout}s"
                f" ({len(others)} others seen)"
            ) from None
        finally:
            for other in others:
                await other.reject(requeue=True)


Samples = dict[str, list[Any]]  # a /metrics page's samples, by sample name


async def metric_samples(system: System, instance: str) -> Samples:
    """Every sample ``instance``'s /metrics shows now."""
    url = f"http://127.0.0.1:{system.port(instance)}/metrics"
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(url)
    assert response.status_code == 200, response.text
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def metric_value(samples: Samples, name: str, **labels: str) -> float:
    """A sample summed over the labels not given (0 if there is none yet)."""
    return float(
        sum(
            s.value
            for s in samples.get(name, [])
            if all(s.labels.get(k) == v for k, v in labels.items())
        )
    )


async def metric(system: System, instance: str, name: str, **labels: str) -> float:
    """One value of ``instance``'s /metrics now (see ``metric_value``)."""
    return metric_value(await metric_samples(system, instance), name, **labels)
