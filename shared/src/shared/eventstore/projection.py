"""Read models kept in tables, updated from the store exactly once per event.

A projection turns each batch of events into SQL statements (it may fold several
events of one row into one statement); those statements and the projection's
checkpoint commit in one transaction, so a crash never applies an
event twice or skips one. Run it as a follower (``Runtime.follow``).

A projection reads the log as stored and parses the event types this release
knows; one recorded by a newer release during a rolling upgrade is passed over
(logged once per type), so the read model keeps advancing instead of stopping.
A projection that cannot be right without some types names them in ``requires``:
a newer shape of one of those stops it instead (``UnreadableEventError``).
"""

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import psycopg

from shared.domain.envelope import EventEnvelope
from shared.eventstore.checkpoints import SUPERSEDED, Checkpoints
from shared.eventstore.pool import Pool
from shared.eventstore.port import RawEvent
from shared.eventstore.unknown import PassedOver, UnreadableEventError

Statement = tuple[str, Sequence[Any] | Mapping[str, Any]]


class SupersededError(Exception):
    """The checkpoint is no longer where this batch was read after: this one's
    rows roll back, and its follower starts again from where the checkpoint is.

    Two instances can hold a batch at once for a moment (a leader whose lock
    session died has not noticed yet): whoever moved the checkpoint applied the
    batch; the other writes nothing. An operator who moves the checkpoint by hand
    (back to 0, to rebuild the read model) supersedes the running leader too.
    """


class TableProjection:
    subscriber: ClassVar[str]
    requires: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, pool: Pool, checkpoints: Checkpoints) -> None:
        self._pool = pool
        self._checkpoints = checkpoints
        self._passed_over = PassedOver(self.subscriber)

    def statements(self, batch: Sequence[EventEnvelope]) -> list[Statement]:
        """The statements that apply these events, in log order (may be none)."""
        raise NotImplementedError

    async def apply(self, batch: Sequence[RawEvent]) -> None:
        position = batch[-1].global_position
        # The log is dense: the batch was read after the position before its first.
        read_after = batch[0].global_position - 1
        statements = self.statements(self._known(batch))
        async with self._pool.connection() as conn:
            # One round trip for the whole transaction: rows and checkpoint (or
            # the checkpoint alone, when the batch writes nothing).
            try:
                if not statements:
                    await self._checkpoints.move(
                        self.subscriber, read_after, position, conn=conn
                    )
                    return
                async with conn.pipeline(), conn.transaction():
                    async with conn.cursor() as cursor:
                        for query, params in statements:
                            await cursor.execute(query, params)
                    await self._checkpoints.move(
                        self.subscriber, read_after, position, conn=conn
                    )
            except psycopg.Error as error:
                if error.sqlstate == SUPERSEDED:
                    raise SupersededError(str(error)) from error
                raise

    def _known(self, batch: Sequence[RawEvent]) -> list[EventEnvelope]:
        known: list[EventEnvelope] = []
        for event in batch:
            if (envelope := event.known()) is not None:
                known.append(envelope)
            elif event.type in self.requires:
                raise UnreadableEventError(self.subscriber, event)
            else:
                self._passed_over.note(event)
        return known
