"""The PostgreSQL connection pool every adapter of the store shares."""

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from psycopg import AsyncConnection, errors
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from shared.postgres.connections import answered_within, to_live_primary

logger = logging.getLogger(__name__)

# A connection back in the pool for less than this is handed out unchecked.
CHECK_AFTER_IDLE_S = 1.0
# A live server answers the check's query at once, however loaded: one that has
# not in this long has gone silent, and the connection is dropped.
CHECK_ANSWER_S = 2.0
# How long a caller waits for a connection (then PoolTimeout: nothing was sent).
# A healthy pool lends one within milliseconds; waiting psycopg_pool's default
# 30 s would keep a submit from its "not recorded" answer for as long, twice over
# for one queued behind a batch that waits too.
CONNECTION_WAIT_S = 10.0

ANSWER_WITHIN_S: Final = 6.0
"""How long a statement waits for its answer, once sent, before its connection
counts as lost (``UnansweredError``): past the statement timeout (5 s), which
bounds all but the commit's flush. A healthy store slower than this only costs a
reconnect: the append is retried and found recorded. The wait for a connection
is the pool's own (``PoolTimeout``, when nothing was sent)."""


class Pool(AsyncConnectionPool[AsyncConnection[TupleRow]]):
    """A pool that lets go of a connection to a server that refuses writes, and
    of one whose server stops answering.

    A primary demoted but kept up answers every write with ReadOnlySqlTransaction
    on connections that stay healthy otherwise, so the pool would keep lending
    them (for an hour, their lifetime) and never reach the new primary. Closed
    here, the pool replaces it by a connection that passes over read-only
    servers (``to_live_primary``).
    """

    @asynccontextmanager
    async def connection(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 - psycopg_pool's own
        *,
        answer_within_s: float | None = None,
    ) -> AsyncIterator[AsyncConnection[TupleRow]]:
        """A pooled connection; with ``answer_within_s``, what the block sends on
        it is answered in that long or fails (``answered_within``)."""
        async with super().connection(timeout) as conn:
            try:
                if answer_within_s is None:
                    yield conn
                else:
                    async with answered_within(conn, answer_within_s):
                        yield conn
            except errors.ReadOnlySqlTransaction:
                await conn.close()
                raise


class _IdleCheck:
    """Ping a connection before lending it, but only if it sat idle for a while.

    A busy pool lends each connection again within milliseconds; pinging every
    time would double the round trips of every query. A connection that has been
    idle long enough for the server to have restarted meanwhile is checked.
    Anything that still fails mid-query is an ``OperationalError`` its caller
    retries, and the pool discards the broken connection.
    """

    def __init__(self) -> None:
        self._returned: weakref.WeakKeyDictionary[AsyncConnection[TupleRow], float] = (
            weakref.WeakKeyDictionary()
        )
        self.pool: weakref.ref[Pool] | None = None  # set once the pool exists
        self._draining: asyncio.Task[None] | None = None

    async def returned(self, conn: AsyncConnection[TupleRow]) -> None:
        self._returned[conn] = time.monotonic()

    async def check(self, conn: AsyncConnection[TupleRow]) -> None:
        returned = self._returned.get(conn)
        if returned is not None and time.monotonic() - returned < CHECK_AFTER_IDLE_S:
            return
        async with answered_within(conn, CHECK_ANSWER_S):
            cursor = await conn.execute("SHOW transaction_read_only")
            row = await cursor.fetchone()
        if conn.closed:
            # The answer came as the deadline passed: the connection is gone.
            raise errors.OperationalError("the pool's check went unanswered")
        if row is not None and row[0] == "on":
            # Demoted, or fenced read-only: reads here would be stale, and the
            # first write refused. Closed, it is discarded (a failed check alone
            # puts a healthy connection back), and a new one goes to the primary.
            await conn.close()
            self._drain_soon()
            raise errors.OperationalError("the server only takes reads now")

    def _drain_soon(self) -> None:
        """Replace every idle connection at once: they all lead to the server
        that now only reads, and checked one by one, with the pool's growing
        pauses between failed checks, they would keep a request waiting for
        seconds while new connections to the primary stood ready."""
        pool = self.pool() if self.pool is not None else None
        if pool is None or (self._draining is not None and not self._draining.done()):
            return
        self._draining = asyncio.get_running_loop().create_task(pool.drain())
        self._draining.add_done_callback(_log_failed_drain)


def _log_failed_drain(task: "asyncio.Task[None]") -> None:
    # A pool closed meanwhile, say: its connections go with it anyway.
    if not task.cancelled() and (error := task.exception()) is not None:
        logger.warning("could not replace the pool's connections: %r", error)


def open_pool(
    conninfo: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    statement_timeout_ms: int = 5_000,
    idle_in_transaction_timeout_ms: int = 5_000,
    name: str | None = None,
) -> Pool:
    """A pool of autocommit connections, not yet open.

    The caller opens it (``await pool.open(wait=True)`` fails fast on a wrong URL)
    and closes it, in its lifespan: psycopg deprecates opening an async pool in
    its constructor. Keep it small: appends serialize on one row lock, so extra
    connections only add waiters. The timeouts stop a stuck client from holding
    locks longer than any request is worth.

    No statement of the engine's starts parallel workers. Each touches a handful
    of rows, so a parallel plan only ever comes from a misestimate (a bound the
    planner cannot see, such as a checkpoint read in the same statement), and
    its workers are processes PostgreSQL starts for that one statement: on a
    store of a million events the admission count alone launched two, four
    times a second, for 12 ms instead of 0.06.

    Every statement runs at READ COMMITTED whatever the database's or the role's
    default: an append that waited for the log's counter row reads the rows
    committed meanwhile, which a REPEATABLE READ snapshot would refuse (40001)
    on every contended append. And in UTC: every time the API shows is written
    in one form (``…Z``), whatever zone the server is set to.
    """

    async def configure(conn: AsyncConnection[TupleRow]) -> None:
        await conn.execute(
            "SELECT set_config('statement_timeout', %s, false),"
            " set_config('idle_in_transaction_session_timeout', %s, false),"
            " set_config('max_parallel_workers_per_gather', '0', false),"
            " set_config('default_transaction_isolation', 'read committed', false),"
            " set_config('TimeZone', 'UTC', false)",
            (str(statement_timeout_ms), str(idle_in_transaction_timeout_ms)),
        )

    idle = _IdleCheck()
    pool = Pool(
        to_live_primary(conninfo),
        min_size=min_size,
        max_size=max_size,
        open=False,
        timeout=CONNECTION_WAIT_S,
        kwargs={"autocommit": True},
        configure=configure,
        check=idle.check,
        reset=idle.returned,
        name=name,
    )
    idle.pool = weakref.ref(pool)
    return pool
