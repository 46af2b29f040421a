"""A primary demoted but kept up, refusing writes (ReadOnlySqlTransaction).

Its connections stay healthy otherwise: the pool must let go of one that was
refused a write, and open no new one to a server that refuses writes, so the
engine reaches the primary again as soon as there is one.
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Final
from uuid import uuid4

import psycopg
import psycopg_pool
import pytest
from psycopg import sql

from shared.eventstore.checkpoints import Checkpoints
from shared.eventstore.pool import CHECK_AFTER_IDLE_S, Pool, open_pool
from shared.eventstore.port import ANY_VERSION
from shared.eventstore.postgres import PostgresEventStore
from tests.conftest import fresh_database
from tests.contracts.event_store import new_events
from tests.integration import probes

pytestmark = pytest.mark.integration

Write = Callable[[Pool], Awaitable[object]]


async def _append(pool: Pool) -> object:
    return await PostgresEventStore(pool).append(uuid4(), new_events(1), ANY_VERSION)


async def _advance_checkpoint(pool: Pool) -> object:
    return await Checkpoints(pool).advance(f"test:{uuid4()}", 1)


async def _refuse_writes(pool: Pool) -> int:
    """The pool's one connection starts refusing writes, as every session of a
    primary fenced with ``default_transaction_read_only`` does: its backend."""
    async with pool.connection() as conn:
        await conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    return await probes.backend_of(pool)


@pytest.mark.parametrize(
    "write",
    [_append, _advance_checkpoint],
    ids=["an append", "a checkpoint"],
)
async def test_a_connection_refused_a_write_is_replaced_by_a_fresh_one(
    database_url: str, write: Write
) -> None:
    pool = open_pool(database_url, min_size=1, max_size=1, name="demoted")
    await pool.open(wait=True)
    try:
        refusing = await _refuse_writes(pool)

        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            await write(pool)
        await write(pool)

        assert await probes.backend_of(pool) != refusing
    finally:
        await pool.close()


async def test_an_idle_connection_to_a_server_that_only_reads_now_is_replaced(
    database_url: str,
) -> None:
    """Reads never meet the refusal that writes do: a connection that only reads
    would go on reading the demoted server's stale log. Once it has sat idle, the
    pool's check finds it read-only and lends a fresh one instead."""
    pool = open_pool(database_url, min_size=1, max_size=1, name="demoted-idle")
    await pool.open(wait=True)
    try:
        refusing = await _refuse_writes(pool)
        await asyncio.sleep(CHECK_AFTER_IDLE_S + 0.2)

        assert await probes.backend_of(pool) != refusing
    finally:
        await pool.close()


STALE = 4
# Lent in turn instead, the stale connections would cost the pool's pauses after
# failed checks: about 0 + 1 + 2 + 4 s before a fresh one.
REPLACED_WITHIN_S = 3.0


async def test_every_idle_connection_to_a_server_that_only_reads_now_is_replaced(
    database_url: str,
) -> None:
    """All of a pool's idle connections lead to the demoted server: the first one
    found read-only has the pool replace them all, rather than lend each in turn
    and find it read-only, with a growing pause after each."""
    pool = open_pool(database_url, min_size=STALE, max_size=STALE, name="demoted-all")
    await pool.open(wait=True)
    try:
        async with contextlib.AsyncExitStack() as held:
            for _ in range(STALE):
                conn = await held.enter_async_context(pool.connection())
                await conn.execute(
                    "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"
                )
        await asyncio.sleep(CHECK_AFTER_IDLE_S + 0.2)

        started = time.monotonic()
        await _append(pool)  # a write, as the engine's first use would be
        waited = time.monotonic() - started
    finally:
        await pool.close()

    assert waited < REPLACED_WITHIN_S, f"waited {waited:.1f}s behind stale connections"


# Long enough for the pool to try a connection while the server refuses writes.
REFUSING_S: Final = 6.0


async def test_a_demoted_primary_is_passed_over_until_it_takes_writes_again(
    infrastructure: tuple[str, str],
) -> None:
    server_url = infrastructure[0]
    with fresh_database(server_url, "demoted") as url:
        database = sql.Identifier(str(psycopg.conninfo.conninfo_to_dict(url)["dbname"]))

        def default_read_only(on: bool) -> None:
            with psycopg.connect(server_url, autocommit=True) as admin:
                admin.execute(
                    sql.SQL(
                        "ALTER DATABASE {} SET default_transaction_read_only = {}"
                    ).format(database, sql.Literal("on" if on else "off"))
                )

        pool = open_pool(url, min_size=1, max_size=1, name="demoted")
        await pool.open(wait=True)
        try:
            default_read_only(True)  # new sessions, and the open one from now on:
            refusing = await _refuse_writes(pool)

            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                await _append(pool)
            # Not another read-only session: none at all, an outage that ends.
            pool.timeout = REFUSING_S
            with pytest.raises(psycopg_pool.PoolTimeout):
                await _append(pool)

            default_read_only(False)
            pool.timeout = 30.0
            await _append(pool)

            assert await probes.backend_of(pool) != refusing
        finally:
            await pool.close()
