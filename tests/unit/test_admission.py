"""Admission control: the in-flight count, the limit, and bursts between counts."""

import asyncio
import contextlib
import heapq
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.admission import (
    REFRESH_S,
    AdaptiveLimit,
    Admission,
    InFlight,
    RetryAdvice,
)


class ReadModel:
    """What the gateway's read model says: orders in flight, as of a position,
    and the longest wait for the engine among them."""

    def __init__(self, in_flight: int = 0, as_of: int = 0) -> None:
        self.in_flight = in_flight
        self.as_of = as_of
        self.engine_wait_s = 0.0

    async def __call__(self) -> InFlight:
        return InFlight(self.in_flight, self.as_of, self.engine_wait_s)


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


async def test_requests_at_the_limit_wait_for_room_in_the_order_they_came() -> None:
    """Six orders went through in the last ten seconds, so three can expect room
    within five: they wait, in turn; a fourth is refused at once."""
    read_model = ReadModel()
    admission = Admission(read_model, limit=1, wait_s=5)
    for position in range(-4, 1):  # five orders admitted and ended, one in flight
        assert admit(admission, position)
        read_model.as_of = position
        await admission.refresh()
    assert admit(admission, 1)

    first = asyncio.create_task(admission.acquire())
    await asyncio.sleep(0)
    second = asyncio.create_task(admission.acquire())
    await asyncio.sleep(0)
    later = asyncio.create_task(admission.acquire())
    await asyncio.sleep(0)
    assert admission.waiting == 3
    assert not await admission.acquire()

    read_model.in_flight, read_model.as_of = 0, 1  # order 1 ended
    await admission.refresh()
    assert await first
    assert not second.done()
    admission.release(2)  # the first waiter's order is recorded: still full
    await asyncio.sleep(0)
    assert not second.done()

    read_model.in_flight, read_model.as_of = 0, 2  # and it ended too
    await admission.refresh()
    assert await second
    assert not later.done()
    admission.release(None)  # the second recorded nothing (a replay): room again
    assert await later
    assert admission.in_flight == 1


async def test_a_request_that_finds_no_room_in_time_is_refused_holding_none() -> None:
    admission = Admission(ReadModel(), limit=1, wait_s=0.05)
    await admission.refresh()
    assert admit(admission, 1)

    assert not await admission.acquire()
    assert admission.waiting == 0
    assert admission.in_flight == 1


async def full_with_one_waiting(
    read_model: ReadModel,
) -> tuple[Admission, asyncio.Task[bool]]:
    """Room for one order, taken (position 1), and a request waiting for room."""
    admission = Admission(read_model, limit=1, wait_s=5)
    await admission.refresh()
    assert admit(admission, 1)
    waiting = asyncio.create_task(admission.acquire())
    await asyncio.sleep(0)
    return admission, waiting


async def hang_up(request: asyncio.Task[bool]) -> None:
    request.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await request


async def test_a_request_gone_while_waiting_takes_no_room_with_it() -> None:
    """A client that hangs up while waiting: the room goes to the next one."""
    read_model = ReadModel()
    admission, gone = await full_with_one_waiting(read_model)
    await hang_up(gone)
    assert admission.waiting == 0

    read_model.in_flight, read_model.as_of = 0, 1
    await admission.refresh()

    assert admission.in_flight == 0
    assert await admission.acquire()


async def test_room_handed_to_a_request_that_is_gone_goes_to_the_next() -> None:
    read_model = ReadModel()
    admission, gone = await full_with_one_waiting(read_model)

    read_model.in_flight, read_model.as_of = 0, 1
    await admission.refresh()  # room handed over, before the request runs again
    await hang_up(gone)

    assert admission.in_flight == 0
    assert await admission.acquire()


async def test_an_append_the_count_already_holds_frees_room_for_a_waiter() -> None:
    """The count saw the order while its append was answering: the release that
    follows is room, and the request waiting gets it at once."""
    read_model = ReadModel()
    admission = Admission(read_model, limit=2, wait_s=5)
    await admission.refresh()
    assert admission.hold()
    read_model.in_flight, read_model.as_of = 1, 7  # the count saw position 7
    await admission.refresh()
    waiting = asyncio.create_task(admission.acquire())
    await asyncio.sleep(0)
    assert admission.waiting == 1

    admission.release(7)  # the append that recorded position 7 answers now

    async with asyncio.timeout(0.1):  # no count needed
        assert await waiting


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
    waits: list[float] = field(default_factory=list)  # every wait told


def simulate_queue(
    retry_after: Callable[[RetryAdvice], float],
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
        run.waits.append(wait)
        heapq.heappush(asks, (clock.now + wait * rng.uniform(1.0, 1.2), client))
    run.still_waiting = len(asks)
    return run


def told(advice: RetryAdvice) -> float:
    return advice.refused()


def one_second(_: RetryAdvice) -> float:
    return 1.0


def test_a_first_refusal_is_told_to_ask_again_at_the_next_count() -> None:
    assert RetryAdvice(clock=Clock()).refused() == REFRESH_S


def test_a_long_queue_costs_a_few_refusals_per_order_and_starves_nothing() -> None:
    """1,000 clients at once at an engine that carries 25 orders/s (100 in
    flight, 4 s each): told the wait for their room, every client is still
    admitted as fast as the engine frees room, with a fifth of the refusals
    that a fixed second costs."""
    fixed = simulate_queue(one_second, waiting=1_000, limit=100, order_s=4, seconds=60)
    adaptive = simulate_queue(told, waiting=1_000, limit=100, order_s=4, seconds=60)

    assert fixed.admitted == adaptive.admitted == 1_000
    assert fixed.refused > 4.5 * adaptive.refused
    assert adaptive.refused < 4 * adaptive.admitted


def test_a_short_queue_is_told_to_ask_again_soon() -> None:
    """Four clients behind two orders in flight for 1.5 s each wait a second
    or two, and are all in within a few seconds."""
    run = simulate_queue(told, waiting=6, limit=2, order_s=1.5, seconds=10)

    assert run.admitted == 6
    assert run.waits
    assert max(run.waits) <= 2


def test_no_room_for_a_whole_window_caps_the_wait() -> None:
    clock = Clock()
    advice = RetryAdvice(clock=clock, max_s=30)
    waits = []
    for _ in range(600):  # 60 clients asking every 0.1 s for 10 s; nothing ends
        clock.now += 0.1
        waits.append(advice.refused())

    assert waits[0] == REFRESH_S
    assert waits[-1] == 30


def test_the_wait_is_forgotten_once_the_queue_is_gone() -> None:
    clock = Clock()
    advice = RetryAdvice(clock=clock)
    for _ in range(2_000):
        clock.now += 0.005
        advice.refused()
    assert advice.refused() > 1

    clock.now += advice.window_s + 1  # nobody refused for a whole window

    assert advice.refused() == REFRESH_S


async def test_only_recorded_orders_count_as_room_that_appeared() -> None:
    """Ten orders recorded, or ten requests that recorded nothing (replays,
    errors), then the same forty refusals: only the first saw room appear."""

    async def wait_told(recorded: bool) -> float:
        clock = Clock()
        admission = Admission(ReadModel(), limit=0, clock=clock)
        await admission.refresh()
        for position in range(1, 11):
            assert admission.hold()
            admission.release(position if recorded else None)
        for _ in range(40):
            clock.now += 0.1
            admission.retry_after()
        return admission.retry_after()

    assert await wait_told(recorded=True) < await wait_told(recorded=False)


# --- the adaptive limit -------------------------------------------------------


@dataclass
class EngineRun:
    completed: int = 0  # orders through the engine in the run's second half
    waits: list[float] = field(default_factory=list)  # each order's queue wait
    limits: list[int] = field(default_factory=list)  # the limit at each count


def simulate_engine(
    admission: Admission,
    read_model: ReadModel,
    clock: Clock,
    *,
    offered_per_s: float,
    capacity_per_s: float,
    outside_s: float,
    seconds: float,
) -> EngineRun:
    """Orders offered at a steady rate (each refused one is simply lost) to an
    engine that takes ``capacity_per_s`` of them in turn, then holds each for
    ``outside_s`` (venues and chain) before it ends; admission counts every
    0.25 s, as the gateway does."""
    start = clock.now
    queue: deque[float] = deque()  # when each waiting order was accepted
    outside: list[float] = []  # when each order past the engine ends
    run = EngineRun()
    offered = served = 0.0
    position = 0
    step = 0.01
    next_count = start
    while clock.now < start + seconds:
        clock.now += step
        while outside and outside[0] <= clock.now:
            heapq.heappop(outside)
        offered += offered_per_s * step
        while offered >= 1:
            offered -= 1
            if admission.hold():
                position += 1
                admission.release(position)
                queue.append(clock.now)
        served = min(served + capacity_per_s * step, 1.0) if queue else 0.0
        while queue and served >= 1:
            served -= 1
            accepted = queue.popleft()
            heapq.heappush(outside, clock.now + outside_s)
            if clock.now > start + seconds / 2:
                run.completed += 1
                run.waits.append(clock.now - accepted)
        if clock.now >= next_count:
            next_count += REFRESH_S
            read_model.in_flight = len(queue) + len(outside)
            read_model.as_of = position
            read_model.engine_wait_s = clock.now - queue[0] if queue else 0.0
            # the count is taken as if from a read model that is up to date
            run.limits.append(_count(admission))
    return run


def _count(admission: Admission) -> int:
    asyncio.run(admission.refresh())
    return admission.limit


def overloaded_engine(*, target_wait_s: float) -> EngineRun:
    """100 orders/s offered to an engine that carries 25/s, each 3 s outside it
    (S3's shape): a limit of 500 lets 425 of them queue inside."""
    clock = Clock()
    read_model = ReadModel()
    admission = Admission(
        read_model, limit=500, target_wait_s=target_wait_s, clock=clock
    )
    return simulate_engine(
        admission,
        read_model,
        clock,
        offered_per_s=100,
        capacity_per_s=25,
        outside_s=3,
        seconds=120,
    )


def test_an_overloaded_engine_is_kept_from_queueing_at_full_throughput() -> None:
    fixed = overloaded_engine(target_wait_s=0)
    adaptive = overloaded_engine(target_wait_s=0.5)

    # the same orders through the engine, at its capacity
    assert adaptive.completed >= 0.97 * fixed.completed >= 0.97 * 25 * 60
    # but admitted orders no longer wait their turn for seconds
    assert percentile(fixed.waits, 0.5) > 10
    assert percentile(adaptive.waits, 0.99) < 2
    assert max(adaptive.limits[len(adaptive.limits) // 2 :]) < 200


def test_a_slow_chain_does_not_shrink_the_limit() -> None:
    """400 orders in flight because each takes 8 s on the chain, none waiting
    for the engine: the limit stays at its ceiling."""
    clock = Clock()
    read_model = ReadModel()
    admission = Admission(read_model, limit=500, target_wait_s=0.5, clock=clock)
    run = simulate_engine(
        admission,
        read_model,
        clock,
        offered_per_s=50,
        capacity_per_s=200,
        outside_s=8,
        seconds=40,
    )

    assert min(run.limits) == 500
    assert run.completed >= 0.97 * 50 * 20


def test_the_limit_comes_back_once_the_engine_catches_up() -> None:
    clock = Clock()
    limit = AdaptiveLimit(500, target_wait_s=0.5, clock=clock)
    for _ in range(240):  # a minute's stall: every order waits
        clock.now += REFRESH_S
        limit.observe(in_flight=limit.value, engine_wait_s=5.0)
    assert limit.value == limit.floor == 64

    counts = 0
    while limit.value < 500:  # the engine takes orders at once again
        clock.now += REFRESH_S
        limit.observe(in_flight=limit.value, engine_wait_s=0.01)
        counts += 1

    assert counts * REFRESH_S < 25  # back at the ceiling within seconds


def test_a_limit_without_target_or_of_zero_stays_fixed() -> None:
    assert Admission(ReadModel(), limit=500).adaptive is None
    assert Admission(ReadModel(), limit=0, target_wait_s=0.5).adaptive is None
    assert AdaptiveLimit(2, target_wait_s=0.5).floor == 2


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def test_an_engine_that_has_caught_up_takes_a_burst_again() -> None:
    """Cut during an overload, the limit is back at its ceiling as soon as the
    engine is idle: a burst on an idle engine is admitted whole."""
    clock = Clock()
    limit = AdaptiveLimit(500, target_wait_s=0.5, clock=clock)
    for _ in range(200):
        clock.now += REFRESH_S
        limit.observe(in_flight=limit.value, engine_wait_s=2.0)
    assert limit.value == limit.floor

    clock.now += REFRESH_S
    limit.observe(in_flight=0, engine_wait_s=0.0)

    assert limit.value == 500
