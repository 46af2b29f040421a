"""Readers that pass over event types this release does not know.

During a rolling upgrade a newer release may record a type an older reader cannot
parse. A reader that only shows or projects events (a read model, the notifier's
hub) passes over it, so it keeps advancing instead of stopping for good; the
deciders never need to (README, "Upgrades that add an event type").
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
            "passing over an event type this release does not know",
            extra={
                "kind": "unknown_event_type",
                "event_type": event.type,
                "subscriber": self._reader,
                "global_position": event.global_position,
            },
        )
