"""The notifier's hub: global order, per-order routing, bounded buffers."""

import uuid
from datetime import UTC, datetime

import pytest

from notifier.hub import Hub, SlowSubscriberError
from shared.domain.envelope import EventEnvelope
from shared.domain.events import RoutingStarted
from shared.eventstore.memory import InMemoryEventStore


def envelope(position: int, order_id: uuid.UUID | None = None) -> EventEnvelope:
    order = order_id or uuid.uuid4()
    return EventEnvelope(
        event_id=uuid.uuid4(),
        order_id=order,
        stream_version=1,
        global_position=position,
        type="RoutingStarted",
        recorded_at=datetime.now(UTC),
        correlation_id=order,
        event=RoutingStarted(attempt=1),
    )


def positions(batch: list[EventEnvelope]) -> list[int]:
    return [e.global_position for e in batch]


async def test_a_subscriber_gets_everything_buffered_oldest_first_in_one_wake_up() -> (
    None
):
    hub = Hub(InMemoryEventStore())
    firehose = hub.subscribe(None)
    for position in (1, 2, 3):
        hub.offer(envelope(position))
    assert positions(await firehose.next()) == [1, 2, 3]
    hub.offer(envelope(4))
    assert positions(await firehose.next()) == [4]


async def test_events_arriving_out_of_order_are_held_until_the_hole_is_filled() -> None:
    hub = Hub(InMemoryEventStore(), hole_timeout=60)
    firehose = hub.subscribe(None)
    hub.offer(envelope(2))
    hub.offer(envelope(3))
    assert hub.watermark == 0
    hub.offer(envelope(1))
    hub.offer(envelope(2))  # a redelivery: never sent twice
    assert positions(await firehose.next()) == [1, 2, 3]
    assert hub.watermark == 3


async def test_an_order_subscriber_gets_only_its_order() -> None:
    hub = Hub(InMemoryEventStore())
    mine, other = uuid.uuid4(), uuid.uuid4()
    subscription = hub.subscribe(mine)
    hub.offer(envelope(1, other))
    hub.offer(envelope(2, mine))
    hub.offer(envelope(3, other))
    assert positions(await subscription.next()) == [2]


async def test_a_full_buffer_marks_the_subscriber_slow_after_what_it_holds() -> None:
    hub = Hub(InMemoryEventStore(), max_buffer=2)
    firehose = hub.subscribe(None)
    for position in (1, 2, 3):
        hub.offer(envelope(position))
    assert firehose.overflowed
    assert positions(await firehose.next()) == [1, 2]
    with pytest.raises(SlowSubscriberError):
        await firehose.next()
