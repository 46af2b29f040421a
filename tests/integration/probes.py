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
from pathlib import Path
from typing import Any
from uuid import UUID

import aio_pika
import httpx
import psycopg
from aio_pika.abc import AbstractIncomingMessage

from shared.domain.envelope import EventEnvelope
from shared.eventstore.pool import open_pool
from shared.eventstore.postgres import PostgresEventStore
from shared.messaging import relay
from tests.integration.system import System

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

# A bigint advisory lock shows in pg_locks as classid = high 32 bits, objid = low
# 32 bits, objsubid = 1 (two int4 keys would have objsubid = 2).
_ADVISORY_HOLDERS = """
SELECT l.pid, a.client_port
  FROM pg_locks AS l JOIN pg_stat_activity AS a USING (pid)
 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND ((l.classid::int8 << 32) | l.objid::int8) = %s
"""

# --- PostgreSQL -------------------------------------------------------------------


def query(system: System, sql: str, params: tuple[object, ...] = ()) -> list[Any]:
    with psycopg.connect(system.env["DATABASE_URL"], autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def relay_key(system: System) -> int:
    """The relay's advisory lock key (one per broker namespace)."""
    return relay.relay_lock_key(system.env["BROKER_NAMESPACE"])


def relay_lock_holders(system: System) -> list[tuple[int, int]]:
    """(backend pid, client port) of every session holding the relay lock."""
    return query(system, _ADVISORY_HOLDERS, (relay_key(system),))


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


async def history(system: System, order_id: str) -> list[EventEnvelope]:
    async with event_store(system) as store:
        return await store.read_stream(UUID(order_id))


# --- Which service process owns a PostgreSQL session ------------------------------


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    fds = Path(f"/proc/{pid}/fd")
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for fd in fds.iterdir():
            with contextlib.suppress(OSError):
                target = str(fd.readlink())
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def _inodes_of_local_port(port: int) -> set[int]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port:
                    inodes.add(int(fields[9]))
    return inodes


def service_of_client_port(system: System, client_port: int) -> str | None:
    """The service process whose TCP socket has ``client_port`` as its local port."""
    if client_port is None or client_port < 0:
        raise AssertionError("DATABASE_URL must use TCP to map sessions to processes")
    inodes = _inodes_of_local_port(client_port)
    for name, process in system.processes.items():
        if process.poll() is None and inodes & _socket_inodes(process.pid):
            return name
    return None


def relay_leader(system: System, *, timeout: float = 10) -> str:
    """The service whose process holds the relay lock (waits for one to hold it)."""
    deadline = time.monotonic() + timeout
    holders: list[tuple[int, int]] = []
    while time.monotonic() < deadline:
        holders = relay_lock_holders(system)
        if len(holders) == 1:
            service = service_of_client_port(system, holders[0][1])
            if service is not None:
                return service
        time.sleep(0.1)
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
