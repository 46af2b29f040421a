"""EventStoreContract: what every EventStore implementation must do, as tests.

Subclass it in a ``Test…`` class and override the ``store`` fixture. Stores may be
shared with other tests, so every test uses fresh stream ids and measures global
positions from ``head_position()`` instead of assuming an empty store.
"""

from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from shared.domain.envelope import EventEnvelope, NewEvent
from shared.domain.events import OrderAccepted, OrderType, RoutingStarted
from shared.domain.pairs import Side
from shared.eventstore.port import (
    ANY_VERSION,
    NO_STREAM,
    EventIdConflictError,
    EventStore,
    WrongExpectedVersionError,
)


def new_events(count: int, *, first_attempt: int = 1) -> list[NewEvent]:
    correlation = uuid4()
    return [
        NewEvent(
            event_id=uuid4(),
            event=RoutingStarted(attempt=first_attempt + i),
            correlation_id=correlation,
        )
        for i in range(count)
    ]


def accepted(order_id: UUID) -> NewEvent:
    return NewEvent(
        event_id=uuid4(),
        event=OrderAccepted(
            order_id=order_id,
            order_type=OrderType.MARKET,
            token_pair="SOL-USDC",
            side=Side.SELL,
            amount=Decimal("1.500000001"),
            slippage_bps=50,
            client_order_id="client-1",
        ),
        correlation_id=uuid4(),
        causation_id=uuid4(),
    )


class EventStoreContract:
    @pytest.fixture
    def store(self) -> EventStore:
        raise NotImplementedError("a Test… subclass provides the store")

    async def test_append_to_new_stream_records_versions_from_one(
        self, store: EventStore
    ) -> None:
        """A new stream's events get versions 1..n and the next n global positions."""
        stream = uuid4()
        head = await store.head_position()

        result = await store.append(stream, new_events(3), NO_STREAM)

        assert result.stream_version == 3
        assert result.last_position - result.first_position == 2
        assert result.first_position > head
        assert not result.replayed
        recorded = await store.read_stream(stream)
        assert [e.stream_version for e in recorded] == [1, 2, 3]
        assert [e.global_position for e in recorded] == list(
            range(result.first_position, result.last_position + 1)
        )

    async def test_recorded_envelope_round_trips_the_event(
        self, store: EventStore
    ) -> None:
        """What is read back is exactly what was appended, with its metadata."""
        stream = uuid4()
        new = accepted(stream)

        await store.append(stream, [new], NO_STREAM)

        (envelope,) = await store.read_stream(stream)
        assert envelope.event == new.event
        assert envelope.event_id == new.event_id
        assert envelope.order_id == stream
        assert envelope.type == "OrderAccepted"
        assert envelope.correlation_id == new.correlation_id
        assert envelope.causation_id == new.causation_id
        assert envelope.recorded_at.tzinfo is not None

    async def test_the_log_as_stored_is_the_log_parsed(self, store: EventStore) -> None:
        """What the relay forwards unparsed is exactly what readers parse."""
        head = await store.head_position()
        stream = uuid4()
        await store.append(stream, [accepted(stream), *new_events(2)], NO_STREAM)

        parsed = await store.read_all(head, limit=10)
        raw = await store.read_all_raw(head, limit=10)

        assert [r.global_position for r in raw] == [e.global_position for e in parsed]
        assert [
            (r.event_id, r.order_id, r.stream_version, r.type, r.correlation_id)
            for r in raw
        ] == [
            (e.event_id, e.order_id, e.stream_version, e.type, e.correlation_id)
            for e in parsed
        ]
        assert [
            EventEnvelope.model_validate_json(r.envelope_json) for r in raw
        ] == parsed

    async def test_append_at_the_read_version_extends_the_stream(
        self, store: EventStore
    ) -> None:
        """Appending with the version last read continues the stream."""
        stream = uuid4()
        await store.append(stream, new_events(2), NO_STREAM)

        result = await store.append(stream, new_events(1, first_attempt=3), 2)

        assert result.stream_version == 3
        assert [e.stream_version for e in await store.read_stream(stream)] == [1, 2, 3]

    async def test_stale_expected_version_is_refused_with_the_actual_one(
        self, store: EventStore
    ) -> None:
        """A writer holding an old version learns the current one; nothing is added."""
        stream = uuid4()
        await store.append(stream, new_events(2), NO_STREAM)

        with pytest.raises(WrongExpectedVersionError) as caught:
            await store.append(stream, new_events(1), 1)

        assert (caught.value.stream, caught.value.expected) == (stream, 1)
        assert caught.value.actual == 2
        assert len(await store.read_stream(stream)) == 2

    async def test_expected_version_ahead_of_the_stream_is_refused(
        self, store: EventStore
    ) -> None:
        """Expecting a version the stream has not reached is a conflict too."""
        stream = uuid4()

        with pytest.raises(WrongExpectedVersionError) as caught:
            await store.append(stream, new_events(1), 4)

        assert caught.value.actual == 0
        assert await store.read_stream(stream) == []

    async def test_no_stream_on_an_existing_stream_is_refused(
        self, store: EventStore
    ) -> None:
        """Creating a stream that already exists fails, so an order is created once."""
        stream = uuid4()
        await store.append(stream, new_events(1), NO_STREAM)

        with pytest.raises(WrongExpectedVersionError) as caught:
            await store.append(stream, new_events(1), NO_STREAM)

        assert caught.value.actual == 1

    async def test_any_version_appends_without_a_check(self, store: EventStore) -> None:
        """Tooling may append with ANY_VERSION whatever the stream's version."""
        stream = uuid4()
        await store.append(stream, new_events(2), NO_STREAM)

        result = await store.append(stream, new_events(1), ANY_VERSION)

        assert result.stream_version == 3

    async def test_retried_append_returns_the_original_result_and_adds_nothing(
        self, store: EventStore
    ) -> None:
        """Re-sending an append (same event ids) succeeds without recording twice."""
        stream = uuid4()
        events = new_events(3)
        first = await store.append(stream, events, NO_STREAM)
        head = await store.head_position()

        again = await store.append(stream, events, NO_STREAM)

        assert (again.first_position, again.last_position, again.stream_version) == (
            first.first_position,
            first.last_position,
            first.stream_version,
        )
        assert again.replayed
        assert not first.replayed
        assert await store.head_position() == head
        assert len(await store.read_stream(stream)) == 3

    async def test_a_racing_writer_of_the_same_ids_learns_it_recorded_nothing(
        self, store: EventStore
    ) -> None:
        """Same ids, other content, same expected version: a replay of the winner's.

        The loser's content is not recorded, and the result says so, so the loser
        can act on what was recorded instead of on its own copy.
        """
        stream = uuid4()
        await store.append(stream, new_events(1), NO_STREAM)
        winner = new_events(1, first_attempt=7)
        loser = [
            NewEvent(
                event_id=winner[0].event_id,
                event=RoutingStarted(attempt=8),
                correlation_id=uuid4(),
            )
        ]
        won = await store.append(stream, winner, 1)

        lost = await store.append(stream, loser, 1)

        assert lost.replayed
        assert lost.stream_version == won.stream_version == 2
        recorded = await store.read_stream(stream)
        assert [e.event for e in recorded[1:]] == [RoutingStarted(attempt=7)]

    async def test_retry_after_the_stream_moved_on_still_returns_the_original(
        self, store: EventStore
    ) -> None:
        """A late retry is recognised by its ids, not refused for its stale version."""
        stream = uuid4()
        events = new_events(2)
        first = await store.append(stream, events, NO_STREAM)
        await store.append(stream, new_events(1, first_attempt=3), 2)

        again = await store.append(stream, events, NO_STREAM)

        assert again.first_position == first.first_position
        assert again.stream_version == first.stream_version
        assert again.replayed
        assert len(await store.read_stream(stream)) == 3

    async def test_event_id_reused_in_another_stream_conflicts(
        self, store: EventStore
    ) -> None:
        """An event id names one recorded event; reusing it elsewhere is an error."""
        events = new_events(1)
        await store.append(uuid4(), events, NO_STREAM)
        other = uuid4()

        with pytest.raises(EventIdConflictError):
            await store.append(other, events, NO_STREAM)

        assert await store.read_stream(other) == []

    async def test_event_id_reused_with_new_events_conflicts(
        self, store: EventStore
    ) -> None:
        """A batch mixing recorded and new ids is no retry: it fails, adding nothing."""
        stream = uuid4()
        recorded = new_events(1)
        await store.append(stream, recorded, NO_STREAM)
        head = await store.head_position()

        with pytest.raises(EventIdConflictError):
            await store.append(stream, [*recorded, *new_events(1)], ANY_VERSION)
        with pytest.raises(EventIdConflictError):
            await store.append(stream, [*new_events(1), *recorded], 1)

        assert await store.head_position() == head
        assert len(await store.read_stream(stream)) == 1

    async def test_read_stream_after_version_skips_what_the_reader_has(
        self, store: EventStore
    ) -> None:
        """A reader holding version v gets only the events after v."""
        stream = uuid4()
        await store.append(stream, new_events(4), NO_STREAM)

        assert [e.stream_version for e in await store.read_stream(stream, 2)] == [3, 4]
        assert await store.read_stream(stream, 4) == []
        assert await store.read_stream(uuid4()) == []

    async def test_read_all_pages_through_positions_in_order(
        self, store: EventStore
    ) -> None:
        """read_all returns what follows a position, in order, `limit` at most."""
        head = await store.head_position()
        first = await store.append(uuid4(), new_events(3), NO_STREAM)
        second = await store.append(uuid4(), new_events(2), NO_STREAM)

        page = await store.read_all(head, limit=4)
        rest = await store.read_all(page[-1].global_position, limit=4)

        assert [e.global_position for e in page] == list(range(head + 1, head + 5))
        assert [e.global_position for e in rest] == [head + 5]
        assert page[0].global_position == first.first_position
        assert rest[-1].global_position == second.last_position
        assert await store.read_all(second.last_position) == []

    async def test_positions_are_dense_and_head_is_the_last_one(
        self, store: EventStore
    ) -> None:
        """Positions continue from the head without gaps; the head is the last one."""
        head = await store.head_position()
        results = [
            await store.append(uuid4(), new_events(n), NO_STREAM) for n in (1, 3, 2)
        ]

        positions = [e.global_position for e in await store.read_all(head)]

        assert positions == list(range(head + 1, head + 7))
        assert [(r.first_position, r.last_position) for r in results] == [
            (head + 1, head + 1),
            (head + 2, head + 4),
            (head + 5, head + 6),
        ]
        assert await store.head_position() == head + 6

    async def test_refused_append_leaves_no_hole(self, store: EventStore) -> None:
        """After a refused append the next one takes the very next position."""
        stream = uuid4()
        await store.append(stream, new_events(1), NO_STREAM)
        head = await store.head_position()
        with pytest.raises(WrongExpectedVersionError):
            await store.append(stream, new_events(2), NO_STREAM)

        result = await store.append(stream, new_events(1), 1)

        assert result.first_position == head + 1

    async def test_malformed_appends_are_rejected(self, store: EventStore) -> None:
        """Empty batches, repeated ids and impossible versions are caller errors."""
        stream = uuid4()
        twice = new_events(1) * 2

        with pytest.raises(ValueError, match="nothing"):
            await store.append(stream, [], NO_STREAM)
        with pytest.raises(ValueError, match="twice"):
            await store.append(stream, twice, NO_STREAM)
        with pytest.raises(ValueError, match="expected version"):
            await store.append(stream, new_events(1), -2)
