"""Read models kept in tables, updated from the store exactly once per event.

A projection turns each batch of events into SQL statements (it may fold several
events of one row into one statement); those statements and the projection's
checkpoint commit in one transaction, so a crash never applies an
event twice or skips one. Run it as a follower (``Runtime.follow``).
"""

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from shared.domain.envelope import EventEnvelope
from shared.eventstore.checkpoints import Checkpoints
from shared.eventstore.pool import Pool

Statement = tuple[str, Sequence[Any] | Mapping[str, Any]]


class TableProjection:
    subscriber: ClassVar[str]

    def __init__(self, *, pool: Pool, checkpoints: Checkpoints) -> None:
        self._pool = pool
        self._checkpoints = checkpoints

    def statements(self, batch: Sequence[EventEnvelope]) -> list[Statement]:
        """The statements that apply these events, in log order (may be none)."""
        raise NotImplementedError

    async def apply(self, batch: Sequence[EventEnvelope]) -> None:
        position = batch[-1].global_position
        statements = self.statements(batch)
        async with self._pool.connection() as conn:
            if not statements:
                # Nothing to write: only the checkpoint moves (one round trip).
                await self._checkpoints.advance(self.subscriber, position, conn=conn)
                return
            # One round trip for the whole transaction: rows and checkpoint.
            async with conn.pipeline(), conn.transaction():
                async with conn.cursor() as cursor:
                    for query, params in statements:
                        await cursor.execute(query, params)
                await self._checkpoints.advance(self.subscriber, position, conn=conn)
