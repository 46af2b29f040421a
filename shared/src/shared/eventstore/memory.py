"""The event store in a process's memory, for unit and service tests."""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from uuid import UUID

from shared.domain.envelope import EventEnvelope, NewEvent
from shared.eventstore.port import (
    ANY_VERSION,
    AppendResult,
    EventIdConflictError,
    RawEvent,
    WrongExpectedVersionError,
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class InMemoryEventStore:
    """``EventStore`` with the PostgreSQL store's semantics, errors included.

    No method awaits between checking and writing, so concurrent tasks on one
    event loop see appends as atomic, as they are in the database.
    """

    def __init__(self, clock: Callable[[], datetime] = _utc_now) -> None:
        self._clock = clock
        self._log: list[EventEnvelope] = []
        self._streams: dict[UUID, list[EventEnvelope]] = {}
        self._by_id: dict[UUID, EventEnvelope] = {}

    async def append(
        self, stream: UUID, events: Sequence[NewEvent], expected_version: int
    ) -> AppendResult:
        if not events:
            raise ValueError("nothing to append")
        if expected_version < ANY_VERSION:
            raise ValueError(f"expected version must be >= -1, got {expected_version}")
        if len({e.event_id for e in events}) != len(events):
            raise ValueError("an append cannot hold the same event id twice")

        replayed = self._recorded_append(stream, events)
        if replayed is not None:
            return replayed

        recorded = self._streams.setdefault(stream, [])
        current = len(recorded)
        if expected_version not in (ANY_VERSION, current):
            raise WrongExpectedVersionError(stream, expected_version, current)

        now = self._clock()
        first = len(self._log) + 1
        for offset, new in enumerate(events):
            envelope = EventEnvelope(
                event_id=new.event_id,
                order_id=stream,
                stream_version=current + 1 + offset,
                global_position=first + offset,
                type=new.event.type,
                recorded_at=now,
                correlation_id=new.correlation_id,
                causation_id=new.causation_id,
                event=new.event,
            )
            self._log.append(envelope)
            recorded.append(envelope)
            self._by_id[new.event_id] = envelope
        return AppendResult(
            first_position=first,
            last_position=len(self._log),
            stream_version=len(recorded),
            replayed=False,
        )

    def _recorded_append(
        self, stream: UUID, events: Sequence[NewEvent]
    ) -> AppendResult | None:
        """The original result if these ids are one earlier run in this stream."""
        found = [self._by_id.get(e.event_id) for e in events]
        present = [f for f in found if f is not None]
        if not present:
            return None
        if len(present) == len(found) and all(
            f.order_id == stream and f.stream_version == present[0].stream_version + i
            for i, f in enumerate(present)
        ):
            return AppendResult(
                first_position=present[0].global_position,
                last_position=present[-1].global_position,
                stream_version=present[-1].stream_version,
                replayed=True,
            )
        raise EventIdConflictError(
            f"event ids already recorded, but not as this append to stream {stream}"
        )

    async def read_stream(
        self, stream: UUID, after_version: int = 0
    ) -> list[EventEnvelope]:
        if after_version < 0:
            raise ValueError(f"after_version must be >= 0, got {after_version}")
        # Versions count from 1, so version v sits at index v - 1.
        return self._streams.get(stream, [])[after_version:]

    async def read_all(
        self, after_position: int = 0, limit: int = 1000
    ) -> list[EventEnvelope]:
        if after_position < 0 or limit < 1:
            raise ValueError(
                "need after_position >= 0 and limit >= 1,"
                f" got {after_position} and {limit}"
            )
        return self._log[after_position : after_position + limit]

    async def read_all_raw(
        self, after_position: int = 0, limit: int = 1000
    ) -> list[RawEvent]:
        return [RawEvent.of(e) for e in await self.read_all(after_position, limit)]

    async def head_position(self) -> int:
        return len(self._log)
