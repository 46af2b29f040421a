"""Where each relay or projection got to in the global log."""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import tuple_row

from shared.eventstore.pool import ANSWER_WITHIN_S, Pool

_GET = "SELECT position FROM es.checkpoints WHERE subscriber = %s"
_GET_MANY = "SELECT subscriber, position FROM es.checkpoints WHERE subscriber = ANY(%s)"

# Monotonic even when two instances race or a slow one finishes late: a
# checkpoint never moves back. Both functions refuse a service that moves
# another's checkpoint (migration 0008).
_ADVANCE = "SELECT es.advance_checkpoint(%s, %s)"

# Fails with SUPERSEDED unless the checkpoint is where the caller read from
# (migrations 0007, 0011).
_MOVE = "SELECT es.move_checkpoint(%s, %s, %s)"
SUPERSEDED = "OE409"


class Checkpoints:
    """Get and advance per-subscriber positions.

    Pass ``conn`` to read or write inside the caller's own transaction (a
    projection commits its read-model update and its checkpoint together);
    without it a pooled autocommit connection is used.
    """

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def get(
        self, subscriber: str, *, conn: AsyncConnection[Any] | None = None
    ) -> int:
        """The last position ``subscriber`` handled; 0 if it never advanced."""
        async with self._connection(conn) as c, c.cursor(row_factory=tuple_row) as cur:
            await cur.execute(_GET, (subscriber,))
            row = await cur.fetchone()
        return 0 if row is None else int(row[0])

    async def positions(self, subscribers: Sequence[str]) -> dict[str, int]:
        """Positions of several subscribers, one query (absent: never advanced)."""
        if not subscribers:
            return {}
        async with (
            self._pool.connection(answer_within_s=ANSWER_WITHIN_S) as c,
            c.cursor(row_factory=tuple_row) as cur,
        ):
            await cur.execute(_GET_MANY, (list(subscribers),))
            return {str(name): int(position) for name, position in await cur.fetchall()}

    async def advance(
        self,
        subscriber: str,
        position: int,
        *,
        conn: AsyncConnection[Any] | None = None,
    ) -> bool:
        """Move ``subscriber`` up to ``position``; False if it was there or past."""
        if position < 0:
            raise ValueError(f"checkpoint position must be >= 0, got {position}")
        async with self._connection(conn) as c, c.cursor(row_factory=tuple_row) as cur:
            await cur.execute(_ADVANCE, (subscriber, position))
            row = await cur.fetchone()
        return bool(row and row[0])

    async def move(
        self, subscriber: str, read_after: int, to: int, *, conn: AsyncConnection[Any]
    ) -> None:
        """Move ``subscriber`` to ``to`` in ``conn``'s transaction.

        The transaction fails (SQLSTATE ``SUPERSEDED``, raised at the latest when
        it commits) unless the checkpoint is at ``read_after``, where the batch
        was read from: another instance applied those events, or the checkpoint
        was moved by hand.
        """
        await conn.execute(_MOVE, (subscriber, read_after, to))

    @asynccontextmanager
    async def _connection(
        self, conn: AsyncConnection[Any] | None
    ) -> AsyncIterator[AsyncConnection[Any]]:
        if conn is not None:
            yield conn
            return
        async with self._pool.connection(answer_within_s=ANSWER_WITHIN_S) as pooled:
            yield pooled
