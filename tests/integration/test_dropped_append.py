"""An order whose append loses its connection, on real PostgreSQL.

A proxy between the gateway's pool and the server cuts the gateway's side while
the server keeps the append's backend: that backend waits on the counter lock,
which another session holds, and goes on once it is released. The gateway must
then answer with the one order that results, recorded once, or, if no try is
answered in its retry window, say that the order may or may not be recorded
while nothing was. An append that never got a connection was not sent: that
answer says it is not recorded.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Self
from uuid import UUID, uuid4

import psycopg
import pytest
from fastapi import HTTPException

import gateway.api
from gateway.admission import Admission, InFlight
from gateway.api import _record_admitted
from gateway.handlers import Placed
from gateway.readmodel import OrdersProjection, OrdersView
from shared.domain.events import OrderAccepted
from shared.eventstore.checkpoints import Checkpoints
from shared.eventstore.pool import (
    ANSWER_WITHIN_S,
    CHECK_AFTER_IDLE_S,
    CHECK_ANSWER_S,
    Pool,
    open_pool,
)
from shared.eventstore.postgres import PostgresEventStore
from shared.postgres.connections import UnansweredError
from tests.integration import probes
from tests.unit.order_events import accepted
from tools.system import free_port

pytestmark = pytest.mark.integration


class Proxy:
    """TCP between the pool and PostgreSQL; ``cut`` drops the clients' side only.

    ``silence`` stands for a server lost behind a middlebox that still
    acknowledges every packet: the connections open then carry nothing more
    either way, and nothing tells their clients (no keepalive or user timeout
    ever fires). Connections made later reach the server again, as after a
    failover.
    """

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._clients: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._silenced: set[asyncio.StreamWriter] = set()
        self.port = free_port()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        self._server.close()
        for task in self._tasks:
            task.cancel()

    def cut(self) -> None:
        for client in self._clients:
            client.transport.abort()
        self._clients.clear()

    def silence(self) -> None:
        self._silenced.update(self._clients)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        self._clients.append(writer)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            # Once the client is cut the server's output is read and dropped, so
            # its backend never blocks on a full socket: it carries on as a server
            # does when the network between it and its client fails.
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    if not dst.is_closing() and writer not in self._silenced:
                        dst.write(data)

        for task in (
            asyncio.create_task(pump(reader, up_writer)),
            asyncio.create_task(pump(up_reader, writer)),
        ):
            self._tasks.add(task)


@contextlib.asynccontextmanager
async def counter_locked(database_url: str) -> AsyncIterator[asyncio.Event]:
    """Hold the store's counter row lock until the event is set."""
    release = asyncio.Event()
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await conn.execute(
            "UPDATE es.position_counter SET last_position = last_position"
        )
        try:
            yield release
            await release.wait()
        finally:
            await conn.commit()


async def _waiting_on_the_lock(database_url: str, *, waiting: bool = True) -> None:
    """Until an append's backend waits for the counter lock (or, not ``waiting``,
    none does)."""
    async with await psycopg.AsyncConnection.connect(
        database_url, autocommit=True
    ) as conn:
        async with asyncio.timeout(10):
            while True:
                cursor = await conn.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND query LIKE '%append_batch%'"
                )
                row = await cursor.fetchone()
                if row and bool(row[0]) == waiting:
                    return
                await asyncio.sleep(0.02)


async def _nothing_in_flight() -> InFlight:
    return InFlight(0, 0, 0.0)


# The append functions' own lock_timeout (migrations 0001, 0005, 0006).
APPEND_LOCK_TIMEOUT_S = 2.0


def _recorded(database_url: str, order_id: UUID) -> list[tuple[str, UUID | None]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT event_type, causation_id FROM es.events WHERE stream_id = %s"
            " ORDER BY stream_version",
            (order_id,),
        ).fetchall()
    return [(str(kind), cause) for kind, cause in rows]


@contextlib.asynccontextmanager
async def _proxied_pool(database_url: str) -> AsyncIterator[tuple[Proxy, Pool]]:
    """An open pool whose connections go through a ``Proxy``."""
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    host, port = str(info.get("host", "127.0.0.1")), int(str(info.get("port", 5432)))
    async with Proxy(host, port) as proxy:
        proxied = psycopg.conninfo.make_conninfo(
            database_url, host="127.0.0.1", port=proxy.port
        )
        pool = open_pool(proxied, min_size=1, max_size=4, name="dropped-append")
        await pool.open(wait=True)
        try:
            yield proxy, pool
        finally:
            await pool.close()


async def _submit(store: PostgresEventStore, order: OrderAccepted) -> Placed:
    return await _record_admitted(
        store,
        Admission(_nothing_in_flight, limit=0),
        order,
        correlation_id=uuid4(),
    )


async def _submit_and_cut(
    database_url: str, order: OrderAccepted, *, hold_s: float
) -> Placed | HTTPException:
    """Submit ``order`` while its append waits on the lock, cut the connection,
    release the lock ``hold_s`` later: what the gateway answers."""
    async with _proxied_pool(database_url) as (proxy, pool):
        async with counter_locked(database_url) as release:
            submitted = asyncio.create_task(_submit(PostgresEventStore(pool), order))
            await _waiting_on_the_lock(database_url)
            proxy.cut()
            await asyncio.sleep(hold_s)
            release.set()
        try:
            return await submitted
        except HTTPException as refused:
            return refused


async def test_an_append_the_server_commits_after_the_drop_is_the_one_order(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = accepted()
    dropped: list[UUID] = []
    after_drop = gateway.api._placed_after_drop

    async def spied(*args: Any, **kwargs: Any) -> Placed:
        dropped.append(kwargs["submission_id"])
        return await after_drop(*args, **kwargs)

    monkeypatch.setattr(gateway.api, "_placed_after_drop", spied)

    outcome = await _submit_and_cut(database_url, order, hold_s=1.0)

    assert isinstance(outcome, Placed), outcome
    assert dropped == [outcome.recorded_by]  # the cut reached the gateway
    assert outcome.order_id == order.order_id
    assert not outcome.replayed  # its own first attempt
    assert _recorded(database_url, order.order_id) == [
        ("OrderAccepted", outcome.recorded_by)
    ]


async def test_an_append_no_try_gets_through_is_said_to_be_unknown(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock outlasts the retries, and the cut append's own lock timeout: the
    answer says it may be recorded, and it is not."""
    retry_s = 2.5
    monkeypatch.setattr("gateway.api.DROPPED_APPEND_RETRY_S", retry_s)
    order = accepted()

    # Held past the last try's own lock timeout: a try may start as late as the
    # end of the retry window and then wait APPEND_LOCK_TIMEOUT_S on the lock, and
    # released before that one gives up, it would commit after the 503.
    outcome = await _submit_and_cut(
        database_url, order, hold_s=retry_s + APPEND_LOCK_TIMEOUT_S + 1.5
    )

    assert isinstance(outcome, HTTPException)
    assert outcome.status_code == 503
    assert "may or may not be recorded" in outcome.detail
    assert str(order.order_id) in outcome.detail
    assert _recorded(database_url, order.order_id) == []


async def test_an_unanswered_statement_fails_at_once_and_its_connection_is_replaced(
    database_url: str,
) -> None:
    """No cancel request is sent and waited for (psycopg's cancellation would wait
    up to 5 s for the cancel, then 5 s for the statement to end): the connection
    is dropped at the bound, and the pool replaces it."""
    answer_s = 0.5
    async with _proxied_pool(database_url) as (proxy, pool):
        store = PostgresEventStore(pool, answer_within_s=answer_s)
        silenced = await probes.backend_of(pool)
        proxy.silence()
        started = time.monotonic()
        with pytest.raises(UnansweredError):
            await store.head_position()
        elapsed = time.monotonic() - started

        assert await store.head_position() >= 0
        assert await probes.backend_of(pool) != silenced
    # psycopg's cancel, the old way out, would add about 5 s more.
    assert answer_s <= elapsed < answer_s + 4.0


@pytest.mark.parametrize("read", ["order list", "in-flight count", "checkpoint"])
async def test_a_read_model_query_on_a_silent_store_fails_at_the_bound(
    database_url: str, monkeypatch: pytest.MonkeyPatch, read: str
) -> None:
    """The list, the admission count and the checkpoints behind them are bounded
    like the store's own reads: a partition is a 503 in seconds, not a request
    held for the kernel's 30 s per query."""
    answer_s = 0.5
    monkeypatch.setattr("gateway.readmodel.ANSWER_WITHIN_S", answer_s)
    monkeypatch.setattr("shared.eventstore.checkpoints.ANSWER_WITHIN_S", answer_s)
    async with _proxied_pool(database_url) as (proxy, pool):
        view, checkpoints = OrdersView(pool), Checkpoints(pool)
        queries: dict[str, Callable[[], Awaitable[object]]] = {
            "order list": lambda: view.recent(status=None, limit=10),
            "in-flight count": view.count_in_flight,
            "checkpoint": lambda: checkpoints.get(OrdersProjection.subscriber),
        }
        await probes.backend_of(pool)  # the next query takes this one unchecked
        proxy.silence()
        started = time.monotonic()
        with pytest.raises(UnansweredError):
            await asyncio.wait_for(queries[read](), timeout=20)
        elapsed = time.monotonic() - started

    assert answer_s <= elapsed < answer_s + 4.0


async def test_an_idle_connection_gone_silent_is_replaced_when_lent(
    database_url: str,
) -> None:
    """The pool's check of an idle connection is a statement too: left
    unanswered, the connection is dropped and another one lent."""
    async with _proxied_pool(database_url) as (proxy, pool):
        silenced = await probes.backend_of(pool)
        await asyncio.sleep(CHECK_AFTER_IDLE_S)
        proxy.silence()
        started = time.monotonic()
        async with asyncio.timeout(CHECK_ANSWER_S + 5.0):
            lent = await probes.backend_of(pool)
        elapsed = time.monotonic() - started

    assert lent != silenced
    assert CHECK_ANSWER_S <= elapsed < CHECK_ANSWER_S + 4.0


async def test_an_append_the_store_never_answers_ends_in_a_503_naming_the_order(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server lost behind a middlebox gives no error at all: the first try
    counts as dropped once it has waited for its answer as long as the store
    allows, and the retries' window (here every try waits on the lock) still
    ends in an answer."""
    answer_s, retry_s = 0.5, 1.0
    monkeypatch.setattr("gateway.api.DROPPED_APPEND_RETRY_S", retry_s)
    order = accepted()
    async with _proxied_pool(database_url) as (proxy, pool):
        store = PostgresEventStore(pool, answer_within_s=answer_s)
        await probes.backend_of(
            pool
        )  # the next request takes this connection unchecked
        proxy.silence()
        async with counter_locked(database_url) as release:
            started = time.monotonic()
            with pytest.raises(HTTPException) as refused:
                await _submit(store, order)
            elapsed = time.monotonic() - started
            # The retries' statements outlive their callers: each in turn gives
            # up on the lock (as the one before lets go, its wait starts anew).
            await _waiting_on_the_lock(database_url, waiting=False)
            release.set()

    assert elapsed < answer_s + retry_s + 4.0
    assert refused.value.status_code == 503
    assert "may or may not be recorded" in refused.value.detail
    assert str(order.order_id) in refused.value.detail
    assert _recorded(database_url, order.order_id) == []


# Past the store's bound on an answer (ANSWER_WITHIN_S, 6 s).
POOL_WAIT_S = 7.0


async def test_an_append_that_never_got_a_connection_is_said_not_to_be_recorded(
    database_url: str,
) -> None:
    """Every connection stays taken past the store's bound on an answer, until
    the pool's own wait runs out: nothing was sent, and the 503 says so instead
    of "may or may not be recorded"."""
    assert POOL_WAIT_S > ANSWER_WITHIN_S
    order = accepted()
    pool = open_pool(database_url, min_size=1, max_size=2, name="full-pool")
    pool.timeout = POOL_WAIT_S
    await pool.open(wait=True)
    taken = [await pool.getconn() for _ in range(pool.max_size)]
    try:
        started = time.monotonic()
        with pytest.raises(HTTPException) as refused:
            await _submit(PostgresEventStore(pool), order)
        elapsed = time.monotonic() - started
    finally:
        for conn in taken:
            await pool.putconn(conn)
        await pool.close()

    assert elapsed >= POOL_WAIT_S
    assert refused.value.status_code == 503
    assert str(order.order_id) in refused.value.detail
    assert "it is not recorded: submitting it again is safe" in refused.value.detail
    assert _recorded(database_url, order.order_id) == []
