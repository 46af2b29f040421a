"""Readers that pass over events this release cannot read.

During a rolling upgrade a newer release may record a type an older reader does
not know, or a known type with a field it lacks. A reader that only shows or
projects events (a read model, the notifier's hub) passes over it, so it keeps
advancing instead of stopping for good; the deciders never need to (README,
"Upgrades that add an event type"). A reader whose work depends on a type (the
executor's set of orders in flight) stops on a newer shape of it instead, loudly.
"""

import logging

from shared.eventstore.port import RawEvent
from shared.metrics import EVENTS_PASSED_OVER

logger = logging.getLogger(__name__)


class PassedOver:
    """Logs each type ``reader`` passes over, once per type, not once per event."""

    def __init__(self, reader: str) -> None:
        self._reader = reader
        self._types: set[str] = set()

    def note(self, event: RawEvent) -> None:
        EVENTS_PASSED_OVER.labels(self._reader, "newer").inc()
        if event.type in self._types:
            return
        self._types.add(event.type)
        logger.warning(
            "passing over events of a type this release cannot read (a type it"
            " does not know, or a newer release's shape of one it does)",
            extra={
                "kind": "unreadable_event",
                "event_type": event.type,
                "subscriber": self._reader,
                "global_position": event.global_position,
            },
        )

    def broken(self, event: RawEvent, error: Exception) -> None:
        """An event that does not parse at all, passed over: every one is logged."""
        EVENTS_PASSED_OVER.labels(self._reader, "unreadable").inc()
        logger.error(
            "passing over an event that does not parse (a value this release does"
            " not know, or a corrupt row)",
            extra={
                "kind": "unreadable_event",
                "event_type": event.type,
                "subscriber": self._reader,
                "global_position": event.global_position,
                "event_id": str(event.event_id),
            },
            exc_info=error,
        )


class UnreadableEventError(Exception):
    """``reader`` cannot do without an event it cannot read: it stops, loudly."""

    def __init__(self, reader: str, event: RawEvent) -> None:
        super().__init__(
            f"{reader} cannot read {event.type} at global position"
            f" {event.global_position} (a newer release's shape?) and cannot pass"
            " it over; deploy the release that reads it"
        )
        self.reader = reader
        self.event_type = event.type
        self.global_position = event.global_position
