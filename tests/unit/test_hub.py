"""The notifier's hub: global order, per-order routing, bounded buffers."""

import dataclasses
import json
import uuid
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from notifier.hub import Hub, SlowSubscriberError
from shared.domain.envelope import EventEnvelope
from shared.eventstore.memory import InMemoryEventStore
from shared.eventstore.port import RawEvent
from tests.unit.order_events import recorded


def positions(batch: list[EventEnvelope]) -> list[int]:
    return [e.global_position for e in batch]


async def test_a_subscriber_gets_everything_buffered_oldest_first_in_one_wake_up() -> (
    None
):
    hub = Hub(InMemoryEventStore())
    firehose = hub.subscribe(None)
    for position in (1, 2, 3):
        hub.offer(recorded(position))
    assert positions(await firehose.next()) == [1, 2, 3]
    hub.offer(recorded(4))
    assert positions(await firehose.next()) == [4]


async def test_events_arriving_out_of_order_are_held_until_the_hole_is_filled() -> None:
    hub = Hub(InMemoryEventStore(), hole_timeout=60)
    firehose = hub.subscribe(None)
    hub.offer(recorded(2))
    hub.offer(recorded(3))
    assert hub.watermark == 0
    hub.offer(recorded(1))
    hub.offer(recorded(2))  # a redelivery: never sent twice
    assert positions(await firehose.next()) == [1, 2, 3]
    assert hub.watermark == 3


async def test_an_order_subscriber_gets_only_its_order() -> None:
    hub = Hub(InMemoryEventStore())
    mine, other = uuid.uuid4(), uuid.uuid4()
    subscription = hub.subscribe(mine)
    hub.offer(recorded(1, other))
    hub.offer(recorded(2, mine))
    hub.offer(recorded(3, other))
    assert positions(await subscription.next()) == [2]


async def test_a_full_buffer_marks_the_subscriber_slow_after_what_it_holds() -> None:
    hub = Hub(InMemoryEventStore(), max_buffer=2)
    firehose = hub.subscribe(None)
    for position in (1, 2, 3):
        hub.offer(recorded(position))
    assert firehose.overflowed
    assert positions(await firehose.next()) == [1, 2]
    with pytest.raises(SlowSubscriberError):
        await firehose.next()


class _StoreWithANewerEvent(InMemoryEventStore):
    """A log whose position 2 holds an event a newer release recorded."""

    def __init__(self, newer: RawEvent) -> None:
        super().__init__()
        self._raw = [RawEvent.of(recorded(1)), newer, RawEvent.of(recorded(3))]

    async def read_all_raw(
        self, after_position: int = 0, limit: int = 1000
    ) -> list[RawEvent]:
        return self._raw[after_position : after_position + limit]


def _newer_type(position: int) -> RawEvent:
    order = uuid.uuid4()
    return RawEvent(
        global_position=position,
        event_id=uuid.uuid4(),
        order_id=order,
        stream_version=1,
        type="OrderRepriced",
        correlation_id=order,
        envelope_json='{"type": "OrderRepriced", "limitPrice": "163.2"}',
    )


def _newer_shape(position: int) -> RawEvent:
    """A type this release knows, with a field a newer release added to it."""
    event = RawEvent.of(recorded(position))
    envelope = json.loads(event.envelope_json)
    envelope["event"]["routedBy"] = "router-7"
    return dataclasses.replace(event, envelope_json=json.dumps(envelope))


def _broken(position: int) -> RawEvent:
    """A type this release knows, holding a value it does not (a newer release's
    venue, say) or a corrupt one."""
    event = RawEvent.of(recorded(position))
    envelope = json.loads(event.envelope_json)
    envelope["event"]["attempt"] = "first"
    return dataclasses.replace(event, envelope_json=json.dumps(envelope))


@pytest.mark.parametrize(
    "newer",
    [_newer_type, _newer_shape, _broken],
    ids=["a new type", "a new field", "a value that does not parse"],
)
async def test_an_event_this_release_cannot_read_is_passed_over(
    newer: Callable[[int], RawEvent],
) -> None:
    """A newer release's event never reaches the broker copy the hub can parse, so
    the hub fills the hole from the store: it passes over that position instead of
    waiting for it for good, and everything after it still flows."""
    hub = Hub(_StoreWithANewerEvent(newer(2)), hole_timeout=60)
    firehose = hub.subscribe(None)
    hub.offer(recorded(1))
    hub.offer(recorded(3))  # 2 never comes from the broker
    assert hub.watermark == 1

    await hub.fill()

    assert hub.watermark == 3
    assert positions(await firehose.next()) == [1, 3]


def test_an_event_of_a_known_type_that_is_malformed_is_not_passed_over() -> None:
    """Only a newer shape (fields this release lacks) is passed over by readers
    whose work depends on events; a known type that is broken otherwise stops
    them, where their lag shows it. (The hub, which only shows events, passes
    over that too: above.)"""
    assert _newer_shape(2).known() is None
    with pytest.raises(ValidationError):
        _broken(2).known()
