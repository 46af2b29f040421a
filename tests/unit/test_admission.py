"""Admission control: the in-flight count, the limit, and bursts between counts."""

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.admission import Admission, RetryAdvice


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


# --- Retry-After --------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class QueueRun:
    admitted: int = 0
    refused: int = 0
    still_waiting: int = 0
    waits: list[int] = field(default_factory=list)  # told in the run's second half


def simulate_queue(
    retry_after: Callable[[RetryAdvice], int],
    *,
    waiting: int,
    limit: int,
    order_s: float,
    seconds: float,
) -> QueueRun:
    """``waiting`` clients arrive in the first second at an engine that holds
    ``limit`` orders, each for ``order_s``; a refused client asks again after the
    Retry-After it was told plus up to 20 % jitter, as the load generator does."""
    rng = random.Random(7)
    clock = Clock()
    start = clock.now
    advice = RetryAdvice(clock=clock)
    asks = [(start + rng.random(), client) for client in range(waiting)]
    heapq.heapify(asks)
    ends: list[float] = []  # when each order in flight ends
    run = QueueRun()
    while asks and asks[0][0] < start + seconds:
        clock.now, client = heapq.heappop(asks)
        while ends and ends[0] <= clock.now:
            heapq.heappop(ends)
        if len(ends) < limit:
            heapq.heappush(ends, clock.now + order_s)
            advice.admitted()
            run.admitted += 1
            continue
        run.refused += 1
        wait = retry_after(advice)
        if clock.now > start + seconds / 2:
            run.waits.append(wait)
        heapq.heappush(asks, (clock.now + wait * rng.uniform(1.0, 1.2), client))
    run.still_waiting = len(asks)
    return run


def told(advice: RetryAdvice) -> int:
    return advice.refused()


def one_second(_: RetryAdvice) -> int:
    return 1


def test_a_first_refusal_is_told_to_wait_one_second() -> None:
    assert RetryAdvice(clock=Clock()).refused() == 1


def test_a_long_queue_costs_a_few_refusals_per_order_and_starves_nothing() -> None:
    """1,000 clients at once at an engine that carries 25 orders/s (100 in
    flight, 4 s each): told the wait for their room, every client is still
    admitted as fast as the engine frees room, with a sixth of the refusals
    that a fixed second costs."""
    fixed = simulate_queue(one_second, waiting=1_000, limit=100, order_s=4, seconds=60)
    adaptive = simulate_queue(told, waiting=1_000, limit=100, order_s=4, seconds=60)

    assert fixed.admitted == adaptive.admitted == 1_000
    assert fixed.refused > 6 * adaptive.refused
    assert adaptive.refused < 3 * adaptive.admitted


def test_a_short_queue_is_told_to_ask_again_soon() -> None:
    """Four clients behind two orders in flight for 1.5 s each wait a second
    or two, and are all in within a few seconds."""
    run = simulate_queue(told, waiting=6, limit=2, order_s=1.5, seconds=10)

    assert run.admitted == 6
    assert max(run.waits, default=1) <= 2


def test_no_room_for_a_whole_window_caps_the_wait() -> None:
    clock = Clock()
    advice = RetryAdvice(clock=clock, max_s=30)
    waits = []
    for _ in range(600):  # 60 clients asking every 0.1 s for 10 s; nothing ends
        clock.now += 0.1
        waits.append(advice.refused())

    assert waits[0] == 1
    assert waits[-1] == 30


def test_the_wait_is_forgotten_once_the_queue_is_gone() -> None:
    clock = Clock()
    advice = RetryAdvice(clock=clock)
    for _ in range(2_000):
        clock.now += 0.005
        advice.refused()
    assert advice.refused() > 1

    clock.now += advice.window_s + 1  # nobody refused for a whole window

    assert advice.refused() == 1


async def test_only_recorded_orders_count_as_room_that_appeared() -> None:
    """Ten orders recorded, or ten requests that recorded nothing (replays,
    errors), then the same forty refusals: only the first saw room appear."""

    async def wait_told(recorded: bool) -> int:
        clock = Clock()
        admission = Admission(ReadModel(), limit=0, advice=RetryAdvice(clock=clock))
        await admission.refresh()
        for position in range(1, 11):
            assert admission.hold()
            admission.release(position if recorded else None)
        for _ in range(40):
            clock.now += 0.1
            admission.retry_after()
        return admission.retry_after()

    assert await wait_told(recorded=True) < await wait_told(recorded=False)
