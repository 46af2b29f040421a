"""The status frame: its own keys are never overwritten by an event's fields."""

from typing import get_args

import pytest
from pydantic import BaseModel

from shared.domain.events import OrderEvent
from shared.domain.views import status_frame
from tests.unit.order_events import (
    failed_routing_after_a_sent_attempt,
    happy_path,
    recorded,
)

# What a client resumes and orders frames by; "type" is also each event's own.
FRAME_KEYS = {"orderId", "status", "version", "position", "at", "venue"}
EVENTS: tuple[type[BaseModel], ...] = get_args(get_args(OrderEvent)[0])


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.__name__)
def test_no_event_has_a_field_named_like_a_frame_key(event: type[BaseModel]) -> None:
    """``status_frame`` lays the event's fields over the frame's: an event field
    named ``version`` or ``position`` would corrupt every client's cursor."""
    names = {f.alias or name for name, f in event.model_fields.items()}
    # OrderAccepted's orderId is the envelope's own; the frame leaves it out.
    assert names & FRAME_KEYS <= {"orderId"}


def test_a_frame_carries_its_envelope_cursor_whatever_the_event() -> None:
    events = [*happy_path(), *failed_routing_after_a_sent_attempt()]
    for position, event in enumerate(events, start=1):
        envelope = recorded(position, event=event)
        frame = status_frame(envelope)
        assert (frame["orderId"], frame["status"], frame["position"]) == (
            str(envelope.order_id),
            envelope.status.value,
            position,
        )
        assert frame["version"] == envelope.stream_version
        assert frame["type"] == event.type


def test_a_frames_time_is_written_as_every_other_time_of_the_api() -> None:
    """``…Z``, as the order's ``createdAt`` is; not isoformat's ``+00:00``."""
    envelope = recorded(1)

    frame = status_frame(envelope)

    assert frame["at"] == envelope.model_dump(mode="json", by_alias=True)["recordedAt"]
    assert frame["at"].endswith("Z")
