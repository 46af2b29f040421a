"""Admission control: the in-flight count, the limit, and bursts between counts."""

from gateway.admission import Admission


class Counted:
    def __init__(self, value: int) -> None:
        self.value = value

    async def __call__(self) -> int:
        return self.value


async def test_orders_are_admitted_below_the_limit_and_refused_at_it() -> None:
    in_flight = Counted(2)
    admission = Admission(in_flight, limit=3)
    await admission.refresh()

    assert admission.has_room
    admission.accepted()
    assert not admission.has_room
    assert admission.in_flight == 3


async def test_a_burst_between_two_counts_cannot_overshoot_the_limit() -> None:
    admission = Admission(Counted(0), limit=5)
    await admission.refresh()

    admitted = 0
    for _ in range(20):
        if admission.has_room:
            admission.accepted()
            admitted += 1

    assert admitted == 5


async def test_room_comes_back_once_orders_finish() -> None:
    in_flight = Counted(0)
    admission = Admission(in_flight, limit=2)
    await admission.refresh()
    admission.accepted()
    admission.accepted()
    assert not admission.has_room

    in_flight.value = 2  # the read model has projected both
    await admission.refresh()
    assert not admission.has_room
    in_flight.value = 1  # one of them confirmed
    await admission.refresh()

    assert admission.has_room
    assert admission.in_flight == 1


async def test_a_limit_of_zero_admits_every_order() -> None:
    admission = Admission(Counted(10_000), limit=0)
    await admission.refresh()

    assert admission.has_room
