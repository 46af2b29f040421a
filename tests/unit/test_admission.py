"""Admission control: the in-flight count, the limit, and bursts between counts."""

from gateway.admission import Admission


class ReadModel:
    """What the gateway's read model says: orders in flight, as of a position."""

    def __init__(self, in_flight: int = 0, as_of: int = 0) -> None:
        self.in_flight = in_flight
        self.as_of = as_of

    async def __call__(self) -> tuple[int, int]:
        return self.in_flight, self.as_of


async def test_orders_are_admitted_below_the_limit_and_refused_at_it() -> None:
    admission = Admission(ReadModel(in_flight=2, as_of=10), limit=3)
    await admission.refresh()

    assert admission.has_room
    admission.accepted(11)
    assert not admission.has_room
    assert admission.in_flight == 3


async def test_a_burst_between_two_counts_cannot_overshoot_the_limit() -> None:
    admission = Admission(ReadModel(), limit=5)
    await admission.refresh()

    admitted = 0
    for position in range(1, 21):
        if admission.has_room:
            admission.accepted(position)
            admitted += 1

    assert admitted == 5


async def test_orders_the_read_model_has_not_reached_still_count() -> None:
    read_model = ReadModel()
    admission = Admission(read_model, limit=2)
    await admission.refresh()
    admission.accepted(1)
    admission.accepted(2)

    read_model.as_of = 1  # the read model has projected only the first order
    read_model.in_flight = 1
    await admission.refresh()

    assert admission.in_flight == 2
    assert not admission.has_room


async def test_room_comes_back_once_orders_finish() -> None:
    read_model = ReadModel()
    admission = Admission(read_model, limit=2)
    await admission.refresh()
    admission.accepted(1)
    admission.accepted(2)
    assert not admission.has_room

    read_model.in_flight, read_model.as_of = 2, 2  # both projected
    await admission.refresh()
    assert not admission.has_room
    read_model.in_flight, read_model.as_of = 1, 9  # one of them confirmed
    await admission.refresh()

    assert admission.has_room
    assert admission.in_flight == 1


async def test_a_limit_of_zero_admits_every_order() -> None:
    admission = Admission(ReadModel(in_flight=10_000), limit=0)
    await admission.refresh()

    assert admission.has_room
