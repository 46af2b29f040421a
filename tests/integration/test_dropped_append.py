"""An order whose append loses its connection, on real PostgreSQL.

A proxy between the gateway's pool and the server cuts the gateway's side while
the server keeps the append's backend: that backend waits on the counter lock,
which another session holds, and goes on once it is released. The gateway must
then answer with the one order that results, recorded once, or, if no try is
answered in its retry window, say that the order may or may not be recorded
while nothing was.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Self
from uuid import UUID, uuid4

import psycopg
import pytest
from fastapi import HTTPException

import gateway.api
from gateway.admission import Admission, InFlight
from gateway.api import _record_admitted
from gateway.handlers import Placed
from shared.domain.events import OrderAccepted
from shared.eventstore.pool import open_pool
from shared.eventstore.postgres import PostgresEventStore
from tests.unit.order_events import accepted
from tools.system import free_port

pytestmark = pytest.mark.integration


class Proxy:
    """TCP between the pool and PostgreSQL; ``cut`` drops the clients' side only."""

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._clients: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
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
                    if not dst.is_closing():
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


async def _waiting_on_the_lock(database_url: str) -> None:
    """Until an append's backend waits for the counter lock."""
    async with await psycopg.AsyncConnection.connect(
        database_url, autocommit=True
    ) as conn:
        async with asyncio.timeout(10):
            while True:
                cursor = await conn.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND query LIKE '%append_batch%'"
                )
                row = await cursor.fetchone()
                if row and row[0]:
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


async def _submit_and_cut(
    database_url: str, order: OrderAccepted, *, hold_s: float
) -> Placed | HTTPException:
    """Submit ``order`` while its append waits on the lock, cut the connection,
    release the lock ``hold_s`` later: what the gateway answers."""
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    host, port = str(info.get("host", "127.0.0.1")), int(str(info.get("port", 5432)))
    async with Proxy(host, port) as proxy:
        proxied = psycopg.conninfo.make_conninfo(
            database_url, host="127.0.0.1", port=proxy.port
        )
        pool = open_pool(proxied, min_size=1, max_size=4, name="dropped-append")
        await pool.open(wait=True)
        try:
            async with counter_locked(database_url) as release:
                submitted = asyncio.create_task(
                    _record_admitted(
                        PostgresEventStore(pool),
                        Admission(_nothing_in_flight, limit=0),
                        order,
                        correlation_id=uuid4(),
                    )
                )
                await _waiting_on_the_lock(database_url)
                proxy.cut()
                await asyncio.sleep(hold_s)
                release.set()
            try:
                return await submitted
            except HTTPException as refused:
                return refused
        finally:
            await pool.close()


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
