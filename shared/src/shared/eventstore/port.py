"""The event store port: what every implementation promises."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol
from uuid import UUID

from pydantic import ValidationError

from shared.domain.envelope import EventEnvelope, NewEvent
from shared.domain.events import EVENT_TYPES

NO_STREAM: Final = 0
"""Expected version of a stream that must not exist yet."""

ANY_VERSION: Final = -1
"""No concurrency check (tooling only; services always pass the version they read)."""


@dataclass(frozen=True, slots=True)
class AppendResult:
    first_position: int
    last_position: int
    stream_version: int
    replayed: bool
    """The events were already recorded by an earlier append, which may have
    carried other content under the same ids: the caller recorded nothing."""


@dataclass(frozen=True, slots=True)
class RawEvent:
    """A recorded event as the store holds it: the envelope's JSON, unparsed.

    What the relay forwards: it needs the columns it routes and labels by, never
    the event itself, so it can publish event types this release does not know
    (recorded by a newer one during a rolling upgrade).
    """

    global_position: int
    event_id: UUID
    order_id: UUID
    stream_version: int
    type: str
    correlation_id: UUID
    envelope_json: str

    def known(self) -> EventEnvelope | None:
        """The parsed envelope, or None for an event this release cannot read.

        That is a type it does not know, or a type it knows in a newer release's
        shape: fields it does not know and nothing else wrong. Any other failure
        (a corrupt row, a bug in this release's own events) is raised, loudly.
        """
        if self.type not in EVENT_TYPES:
            return None
        try:
            return EventEnvelope.model_validate_json(self.envelope_json)
        except ValidationError as error:
            if all(e["type"] == "extra_forbidden" for e in error.errors()):
                return None
            raise

    @classmethod
    def of(cls, envelope: EventEnvelope) -> "RawEvent":
        return cls(
            global_position=envelope.global_position,
            event_id=envelope.event_id,
            order_id=envelope.order_id,
            stream_version=envelope.stream_version,
            type=envelope.type,
            correlation_id=envelope.correlation_id,
            envelope_json=envelope.model_dump_json(by_alias=True),
        )


class EventStoreError(Exception):
    """Base of the event store's errors."""


class WrongExpectedVersionError(EventStoreError):
    """The stream moved on since the caller read it (or exists when it should not)."""

    def __init__(self, stream: UUID, expected: int, actual: int) -> None:
        super().__init__(
            f"stream {stream}: expected version {expected}, actual {actual}"
        )
        self.stream = stream
        self.expected = expected
        self.actual = actual


class EventIdConflictError(EventStoreError):
    """An event id is already recorded, but not as this exact append."""


class UnreadableStreamError(EventStoreError):
    """A stream holds an event this release cannot parse: a newer release's type,
    field or value (during a rolling upgrade), or a corrupt row. ``stream`` is the
    order's, when one order's stream was read."""

    def __init__(self, detail: str, stream: UUID | None = None) -> None:
        super().__init__(detail if stream is None else f"order {stream}: {detail}")
        self.stream = stream


class EventStore(Protocol):
    """Streams of events, one per order, plus one global commit-ordered log.

    - ``append`` records events at ``expected_version + 1 …`` atomically, or raises
      ``WrongExpectedVersionError``. Appending event ids that are already recorded
      as the same consecutive run in that stream succeeds and returns the original
      positions with ``replayed`` set (idempotent retry, or a racing writer that
      took the same step first).
    - Global positions are dense and become visible in order: a reader that has seen
      position ``n`` will never later find a new event below ``n``.
    """

    async def append(
        self, stream: UUID, events: Sequence[NewEvent], expected_version: int
    ) -> AppendResult: ...

    async def read_stream(
        self, stream: UUID, after_version: int = 0
    ) -> list[EventEnvelope]: ...

    async def read_all(
        self, after_position: int = 0, limit: int = 1000
    ) -> list[EventEnvelope]: ...

    async def read_all_raw(
        self, after_position: int = 0, limit: int = 1000
    ) -> list[RawEvent]:
        """``read_all`` without parsing: the same events, as stored."""
        ...

    async def head_position(self) -> int: ...
