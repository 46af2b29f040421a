"""Admission control: the in-flight count, the limit, and bursts between counts."""

from gateway.admission import Admission


class ReadModel:
    """What the gateway's read model says: orders in flight, as of a position."""

    def __init__(self, in_flight: int = 0, as_of: int = 0) -> None:
        self.in_flight = in_flight
        self.as_of = as_of

    async def __call__(self) -> tuple[int, int]:
        return self.in_flight, self.as_of


def admit(admission: Admission, position: int) -> bool:
    """One request: hold room, record the order at ``position``, release."""
    if not admission.hold():
        return False
    admission.release(position)
    return True


async def test_orders_are_admitted_below_the_limit_and_refused_at_it() -> None:
    admission = Admission(ReadModel(in_flight=2, as_of=10), limit=3)
    await admission.refresh()

    assert admit(admission, 11)
    assert not admission.hold()
    assert admission.in_flight == 3


async def test_a_burst_between_two_counts_cannot_overshoot_the_limit() -> None:
    admission = Admission(ReadModel(), limit=5)
    await admission.refresh()

    admitted = sum(admit(admission, position) for position in range(1, 21))

    assert admitted == 5


async def test_requests_whose_appends_have_not_answered_hold_their_room() -> None:
    """Ten requests check at once, before any append answers: two get room."""
    admission = Admission(ReadModel(), limit=2)
    await admission.refresh()

    held = [admission.hold() for _ in range(10)]

    assert held.count(True) == 2
    assert admission.in_flight == 2
    admission.release(1)
    admission.release(2)
    assert admission.in_flight == 2
    assert not admission.hold()


async def test_room_held_for_an_order_not_recorded_is_given_back() -> None:
    """A replayed clientOrderId or a failed append records nothing."""
    admission = Admission(ReadModel(), limit=1)
    await admission.refresh()

    assert admission.hold()
    admission.release(None)

    assert admission.in_flight == 0
    assert admit(admission, 1)


async def test_orders_the_read_model_has_not_reached_still_count() -> None:
    read_model = ReadModel()
    admission = Admission(read_model, limit=2)
    await admission.refresh()
    admit(admission, 1)
    admit(admission, 2)

    read_model.as_of = 1  # the read model has projected only the first order
    read_model.in_flight = 1
    await admission.refresh()

    assert admission.in_flight == 2
    assert not admission.hold()


async def test_room_comes_back_once_orders_finish() -> None:
    read_model = ReadModel()
    admission = Admission(read_model, limit=2)
    await admission.refresh()
    admit(admission, 1)
    admit(admission, 2)
    assert admission.in_flight == 2

    read_model.in_flight, read_model.as_of = 2, 2  # both projected
    await admission.refresh()
    assert admission.in_flight == 2
    read_model.in_flight, read_model.as_of = 1, 9  # one of them confirmed
    await admission.refresh()

    assert admission.in_flight == 1
    assert admission.hold()


async def test_a_limit_of_zero_admits_every_order() -> None:
    admission = Admission(ReadModel(in_flight=10_000), limit=0)
    await admission.refresh()

    assert all(admit(admission, position) for position in range(1, 100))


async def test_an_order_the_count_already_holds_is_not_added_again() -> None:
    """A count taken while an append is answering already includes the order."""
    read_model = ReadModel()
    admission = Admission(read_model, limit=2)
    await admission.refresh()
    assert admission.hold()

    read_model.in_flight, read_model.as_of = 1, 7  # the count saw position 7
    await admission.refresh()
    admission.release(7)  # the append that recorded position 7 answers now

    assert admission.in_flight == 1
    assert admission.hold()
