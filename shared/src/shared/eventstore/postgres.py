"""The event store on PostgreSQL: one server-side function call per append."""

from collections.abc import Sequence
from typing import Final, LiteralString
from uuid import UUID

import psycopg
from psycopg import errors
from pydantic import TypeAdapter

from shared.domain.envelope import EventEnvelope, NewEvent
from shared.eventstore.pool import Pool
from shared.eventstore.port import (
    ANY_VERSION,
    AppendResult,
    EventIdConflictError,
    RawEvent,
    WrongExpectedVersionError,
)

STORE_CHANNEL: Final = "es_events"  # es.append_events notifies it on every commit
WRONG_EXPECTED_VERSION: Final = "ES001"
EVENT_ID_CONFLICT: Final = "ES002"

# The casts pin every array's type, so psycopg needs no guessing (a list of only
# None has no element type) and the statement's text never varies: it is prepared
# once per connection after a few calls.
APPEND_EVENTS = """
SELECT first_position, last_position, stream_version, replayed
  FROM es.append_events(
       %s, %s, %s::uuid[], %s::text[], %s::jsonb[], %s::uuid[], %s::uuid[])
"""

# The server builds each envelope's JSON (with the wire's camelCase names) and
# aggregates the page into one document, so Python parses one string in
# pydantic-core instead of converting row by row.
_ENVELOPE = """
json_build_object(
    'eventId', e.event_id,
    'orderId', e.stream_id,
    'streamVersion', e.stream_version,
    'globalPosition', e.global_position,
    'type', e.event_type,
    'recordedAt', e.recorded_at,
    'correlationId', e.correlation_id,
    'causationId', e.causation_id,
    'event', e.data)
"""

_READ_STREAM = f"""
SELECT coalesce(json_agg({_ENVELOPE} ORDER BY e.stream_version), '[]')::text
  FROM es.events AS e
 WHERE e.stream_id = %s AND e.stream_version > %s
"""  # noqa: S608 - composed from constants only

_READ_ALL = f"""
SELECT coalesce(json_agg(page.envelope ORDER BY page.global_position), '[]')::text
  FROM (SELECT {_ENVELOPE} AS envelope, e.global_position
          FROM es.events AS e
         WHERE e.global_position > %s
         ORDER BY e.global_position
         LIMIT %s) AS page
"""  # noqa: S608 - composed from constants only

_READ_ALL_RAW = f"""
SELECT e.global_position, e.event_id, e.stream_id, e.stream_version, e.event_type,
       e.correlation_id, {_ENVELOPE}::text
  FROM es.events AS e
 WHERE e.global_position > %s
 ORDER BY e.global_position
 LIMIT %s
"""  # noqa: S608 - composed from constants only

_HEAD = "SELECT last_position FROM es.position_counter"

_ENVELOPES: Final = TypeAdapter(list[EventEnvelope])


class PostgresEventStore:
    """``EventStore`` on a pool of autocommit connections (see ``open_pool``)."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def append(
        self, stream: UUID, events: Sequence[NewEvent], expected_version: int
    ) -> AppendResult:
        if not events:
            raise ValueError("nothing to append")
        if expected_version < ANY_VERSION:
            raise ValueError(f"expected version must be >= -1, got {expected_version}")
        event_ids = [e.event_id for e in events]
        if len(set(event_ids)) != len(event_ids):
            raise ValueError("an append cannot hold the same event id twice")
        params = (
            stream,
            expected_version,
            event_ids,
            [e.event.type for e in events],
            [e.event.model_dump_json(by_alias=True) for e in events],
            [e.correlation_id for e in events],
            [e.causation_id for e in events],
        )
        try:
            return await self._append(stream, expected_version, params)
        except errors.UniqueViolation:
            # Raced with an append that recorded some of these ids after our replay
            # check (possible with ANY_VERSION, or across streams). Running again
            # lets the replay check see the winner and settle it either way.
            pass
        try:
            return await self._append(stream, expected_version, params)
        except errors.UniqueViolation as e:
            if e.diag.constraint_name == "events_event_id_uq":
                raise EventIdConflictError(e.diag.message_primary or str(e)) from e
            raise

    async def _append(
        self, stream: UUID, expected: int, params: tuple[object, ...]
    ) -> AppendResult:
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(APPEND_EVENTS, params)
                row = await cur.fetchone()
        except psycopg.DatabaseError as e:
            if e.sqlstate == WRONG_EXPECTED_VERSION:
                actual = int(e.diag.message_detail or "-1")
                raise WrongExpectedVersionError(stream, expected, actual) from e
            if e.sqlstate == EVENT_ID_CONFLICT:
                raise EventIdConflictError(e.diag.message_primary or str(e)) from e
            raise
        if row is None:  # the function always returns one row
            raise RuntimeError("es.append_events returned no row")
        first, last, version, replayed = row
        return AppendResult(
            first_position=first,
            last_position=last,
            stream_version=version,
            replayed=replayed,
        )

    async def read_stream(
        self, stream: UUID, after_version: int = 0
    ) -> list[EventEnvelope]:
        if after_version < 0:
            raise ValueError(f"after_version must be >= 0, got {after_version}")
        return await self._read(_READ_STREAM, (stream, after_version))

    async def read_all(
        self, after_position: int = 0, limit: int = 1000
    ) -> list[EventEnvelope]:
        _check_page(after_position, limit)
        return await self._read(_READ_ALL, (after_position, limit))

    async def read_all_raw(
        self, after_position: int = 0, limit: int = 1000
    ) -> list[RawEvent]:
        _check_page(after_position, limit)
        async with self._pool.connection() as conn:
            cur = await conn.execute(_READ_ALL_RAW, (after_position, limit))
            rows = await cur.fetchall()
        return [RawEvent(*row) for row in rows]

    async def head_position(self) -> int:
        async with self._pool.connection() as conn:
            cur = await conn.execute(_HEAD)
            row = await cur.fetchone()
        if row is None:
            raise RuntimeError("es.position_counter has no row: schema not migrated?")
        head: int = row[0]
        return head

    async def _read(
        self, query: LiteralString, params: tuple[object, ...]
    ) -> list[EventEnvelope]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(query, params)
            row = await cur.fetchone()
        return [] if row is None else _ENVELOPES.validate_json(row[0])


def _check_page(after_position: int, limit: int) -> None:
    if after_position < 0 or limit < 1:
        raise ValueError(
            f"need after_position >= 0 and limit >= 1, got {after_position} and {limit}"
        )
