"""The event store on PostgreSQL: appends go in groups, one function call each."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, LiteralString
from uuid import UUID

from psycopg import errors
from pydantic import TypeAdapter, ValidationError

from shared.domain.envelope import EventEnvelope, NewEvent
from shared.eventstore.group_commit import GroupCommit
from shared.eventstore.pool import ANSWER_WITHIN_S, Pool
from shared.eventstore.port import (
    ANY_VERSION,
    AppendResult,
    EventIdConflictError,
    EventStoreError,
    RawEvent,
    UnreadableStreamError,
    WrongExpectedVersionError,
)

STORE_CHANNEL: Final = "es_events"  # every append transaction notifies it once

MAX_APPENDS_PER_BATCH: Final = 256
"""Bounds one transaction's hold on the counter lock; under it, every append that
queued during the previous transaction goes in the next."""

BATCHES_IN_FLIGHT: Final = 2
"""While one batch holds the counter lock, the next already waits for it at the
server, so the lock passes on without a round trip to this process in between."""

# The casts pin every array's type, so psycopg needs no guessing (a list of only
# None has no element type) and the statement's text never varies: it is prepared
# once per connection after a few calls.
APPEND_BATCH = """
SELECT outcome, first_position, last_position, stream_version
  FROM es.append_batch(%s::uuid[], %s::int[], %s::int[],
       %s::uuid[], %s::text[], %s::jsonb[], %s::uuid[], %s::uuid[])
"""

# One append in its own transaction: the previous release's statement. This
# release never sends it; the function stays for the previous release's writers
# during a rolling upgrade, and `make floor` and tools.appends price one
# transaction per append with it.
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


@dataclass(frozen=True, slots=True)
class _Append:
    stream: UUID
    expected_version: int
    event_ids: list[UUID]
    event_types: list[str]
    data: list[str]
    correlation_ids: list[UUID]
    causation_ids: list[UUID | None]


class PostgresEventStore:
    """``EventStore`` on a pool of autocommit connections (see ``open_pool``).

    Concurrent appends share transactions (``GroupCommit``); each still succeeds
    or fails on its own, exactly as if it had been sent alone. A server that
    leaves a statement unanswered for ``answer_within_s`` (a partition, a dead
    host) fails it as a lost connection.
    """

    def __init__(self, pool: Pool, *, answer_within_s: float = ANSWER_WITHIN_S) -> None:
        self._pool = pool
        self._answer_within_s = answer_within_s
        self._appends = GroupCommit[_Append, AppendResult](
            self._append_batch,
            max_batch=MAX_APPENDS_PER_BATCH,
            max_in_flight=BATCHES_IN_FLIGHT,
        )

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
        return await self._appends.submit(
            _Append(
                stream=stream,
                expected_version=expected_version,
                event_ids=event_ids,
                event_types=[e.event.type for e in events],
                data=[e.event.model_dump_json(by_alias=True) for e in events],
                correlation_ids=[e.correlation_id for e in events],
                causation_ids=[e.causation_id for e in events],
            )
        )

    async def _append_batch(
        self, appends: Sequence[_Append]
    ) -> list[AppendResult | Exception]:
        params = (
            [a.stream for a in appends],
            [a.expected_version for a in appends],
            [len(a.event_ids) for a in appends],
            [i for a in appends for i in a.event_ids],
            [t for a in appends for t in a.event_types],
            [d for a in appends for d in a.data],
            [c for a in appends for c in a.correlation_ids],
            [c for a in appends for c in a.causation_ids],
        )
        try:
            rows = await self._send(params)
        except errors.UniqueViolation:
            # Only a writer of the previous release, whose check runs before it
            # takes the lock, can race an id in; running again sees its append.
            rows = await self._send(params)
        return [
            _outcome(append, *row) for append, row in zip(appends, rows, strict=True)
        ]

    async def _send(
        self, params: tuple[object, ...]
    ) -> list[tuple[str, int | None, int | None, int | None]]:
        async with self._pool.connection(answer_within_s=self._answer_within_s) as conn:
            cur = await conn.execute(APPEND_BATCH, params)
            return await cur.fetchall()

    async def read_stream(
        self, stream: UUID, after_version: int = 0
    ) -> list[EventEnvelope]:
        if after_version < 0:
            raise ValueError(f"after_version must be >= 0, got {after_version}")
        return await self._read(_READ_STREAM, (stream, after_version), stream=stream)

    async def read_all(
        self, after_position: int = 0, limit: int = 1000
    ) -> list[EventEnvelope]:
        _check_page(after_position, limit)
        return await self._read(_READ_ALL, (after_position, limit))

    async def read_all_raw(
        self, after_position: int = 0, limit: int = 1000
    ) -> list[RawEvent]:
        _check_page(after_position, limit)
        async with self._pool.connection(answer_within_s=self._answer_within_s) as conn:
            cur = await conn.execute(_READ_ALL_RAW, (after_position, limit))
            rows = await cur.fetchall()
        return [RawEvent(*row) for row in rows]

    async def head_position(self) -> int:
        async with self._pool.connection(answer_within_s=self._answer_within_s) as conn:
            cur = await conn.execute(_HEAD)
            row = await cur.fetchone()
        if row is None:
            raise RuntimeError("es.position_counter has no row: schema not migrated?")
        head: int = row[0]
        return head

    async def _read(
        self,
        query: LiteralString,
        params: tuple[object, ...],
        *,
        stream: UUID | None = None,
    ) -> list[EventEnvelope]:
        async with self._pool.connection(answer_within_s=self._answer_within_s) as conn:
            cur = await conn.execute(query, params)
            row = await cur.fetchone()
        if row is None:
            return []
        try:
            return _ENVELOPES.validate_json(row[0])
        except ValidationError as error:
            raise UnreadableStreamError(str(error), stream) from error


def _outcome(
    append: _Append,
    outcome: str,
    first: int | None,
    last: int | None,
    version: int | None,
) -> AppendResult | EventStoreError:
    match outcome, first, last, version:
        case (("appended" | "replayed"), int(), int(), int()):
            return AppendResult(
                first_position=first,
                last_position=last,
                stream_version=version,
                replayed=outcome == "replayed",
            )
        case "wrong_version", _, _, int():
            return WrongExpectedVersionError(
                append.stream, append.expected_version, version
            )
        case "id_conflict", _, _, _:
            return EventIdConflictError(
                "event ids already recorded, but not as this append to stream "
                f"{append.stream}"
            )
    raise RuntimeError(f"es.append_batch answered {outcome!r} for {append.stream}")


def _check_page(after_position: int, limit: int) -> None:
    if after_position < 0 or limit < 1:
        raise ValueError(
            f"need after_position >= 0 and limit >= 1, got {after_position} and {limit}"
        )
