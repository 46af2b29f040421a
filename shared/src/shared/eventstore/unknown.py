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

logger = logging.getLogger(__name__)


class PassedOver:
    """Logs each type ``reader`` passes over, once per type, not once per event."""

    def __init__(self, reader: str) -> None:
        self._reader = reader
        self._types: set[str] = set()

    def note(self, event: RawEvent) -> None:
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
