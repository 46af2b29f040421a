"""Admission control: refuse new orders while too many are still in flight.

An engine that accepts more than it carries queues the excess, and a market order
that waits a minute for its route is worse for the client than a prompt refusal it
can retry. So the gateway keeps the number of orders in flight (neither confirmed
nor failed) under a limit and answers 503 with ``Retry-After`` above it.

The count is refreshed in the background: the read model's orders in flight plus
every order accepted after its checkpoint, by any gateway, read from the log up to
its head, together with that head's position. Orders this process accepts after
that position are added to it, so a burst through one gateway cannot overshoot
the limit however far the read model trails. A request holds its room from the
check until its append has answered, so concurrent requests never share one free
slot. Other gateways' orders are seen from the next refresh (``REFRESH_S``): N
gateways taking one burst inside the same refresh can each fill the room left.

The limit itself adapts (``AdaptiveLimit``): ``MAX_ORDERS_IN_FLIGHT`` is its
ceiling, and below it the gateway admits only as many orders as the engine takes
without making them queue for a router or an executor. At the limit a request
waits a moment for room, first come first served (``Admission.acquire``), before
it is refused.

``Retry-After`` tells a refused client when room is likely to be there for it
(``RetryAdvice``): a fixed second would have every waiting client poll once a
second however long the queue, and each poll costs the gateway a request.
"""

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, NamedTuple

from shared.metrics import (
    ADMISSION_LIMIT,
    ENGINE_WAIT,
    ORDERS_IN_FLIGHT,
    RETRY_AFTER,
)
from shared.service.periodic import every

logger = logging.getLogger(__name__)


class InFlight(NamedTuple):
    """What admission reads of the engine, in one snapshot."""

    orders: int  # neither confirmed nor failed
    as_of: int  # the log position the count includes every order up to
    # How long orders have waited for a router or an executor to take them up:
    # the fourth-longest wait, so that a few orders stuck for good do not count
    # (0 with fewer waiting); a read model that trails adds its lag
    engine_wait_s: float


CountInFlight = Callable[[], Awaitable[InFlight]]

REFRESH_S: Final = 0.25


@dataclass(slots=True)
class _Second:
    second: int
    admitted: int = 0
    waits_s: float = 0.0  # the waits given to the clients refused in it


class RetryAdvice:
    """How long a refused client should wait: waiting clients over the rate at
    which room appears, both as this gateway sees them.

    At the limit every order that ends frees room that the next request takes, so
    the rate of admissions is the rate at which room appears. Waiting clients are
    counted from the refusals: a client told to wait T seconds is refused about once
    per T, so the refusals of the last ``window_s``, each weighted by the wait it was
    given, sum to ``window_s`` per waiting client, whatever the waits were. Clients
    are then told to wait until ``polls_per_room`` of them will have asked per room
    that appears: enough that room rarely stands empty, few enough that a queue of
    thousands costs the gateway about one refusal per admitted order instead of
    one per waiting client per second.

    The wait is never under one count of the orders in flight (``REFRESH_S``):
    room that ends shows only at the next count. With N gateways behind a balancer
    each sees its share of both rates, and the ratio is the same. Pure arithmetic
    on an injected clock: no I/O.
    """

    def __init__(
        self,
        *,
        window_s: float = 10.0,
        min_s: float = REFRESH_S,
        max_s: float = 30.0,
        polls_per_room: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self.min_s = min_s
        self.max_s = max_s
        self.polls_per_room = polls_per_room
        self._clock = clock
        self._seconds: deque[_Second] = deque()  # the window, a second per entry

    def admitted(self) -> None:
        self._now().admitted += 1

    def room_per_s(self) -> float:
        """Orders admitted per second over the window: the rate room appears at
        while the limit binds."""
        self._now()
        return sum(second.admitted for second in self._seconds) / self.window_s

    def refused(self) -> float:
        """Record a refusal and return the seconds to tell its client."""
        # No room at all in the window: as if one order had ended in it.
        room_per_s = max(self.room_per_s(), 1 / self.window_s)
        waiting = sum(second.waits_s for second in self._seconds) / self.window_s
        wait = waiting / (room_per_s * self.polls_per_room)
        seconds = min(self.max_s, max(self.min_s, round(wait, 3)))
        self._now().waits_s += seconds
        return seconds

    def _now(self) -> _Second:
        """The current second's entry, the window pruned to ``window_s``."""
        second = int(self._clock())
        while self._seconds and self._seconds[0].second <= second - self.window_s:
            self._seconds.popleft()
        if not self._seconds or self._seconds[-1].second != second:
            self._seconds.append(_Second(second))
        return self._seconds[-1]


class AdaptiveLimit:
    """The in-flight limit under which orders do not queue inside the engine.

    A fixed limit is right for one machine and one load only. Set high, it lets an
    engine that is short of CPU take on more than it carries: the excess waits
    inside, for a router or an executor, and a market order routed seconds after
    it was accepted is exactly what admission is there to prevent. Set low, it
    refuses orders that a larger machine would carry at once.

    So the limit follows the engine's own queueing, as TCP Vegas and CoDel follow a
    link's: each count says how long orders have waited for a router or an
    executor (``InFlight.engine_wait_s``). Above ``target_wait_s`` the limit is cut
    to nine tenths of the orders in flight (at most once per ``cut_every_s``, so one
    cut shows in the waits before the next); below it, while the limit binds, it
    grows by a twentieth (at least one order) per count, up to ``ceiling``, and
    once less than half of it is in use it is back at ``ceiling`` at once: it is
    there for sustained overload, and an engine that has caught up takes a burst.
    It is never cut below ``floor``: a client that keeps a few dozen orders open
    at once is served, not polled, and queues that short drain in a second or two.
    Waits for venues, back-offs and the chain are not the engine's and are not
    counted, so orders in flight for seconds on a slow chain do not shrink it.
    Pure arithmetic on an injected clock: no I/O.
    """

    def __init__(
        self,
        ceiling: int,
        *,
        target_wait_s: float,
        floor: int = 64,
        cut_every_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ceiling = ceiling
        self.floor = min(floor, ceiling)
        self.target_wait_s = target_wait_s
        self.cut_every_s = cut_every_s
        self._clock = clock
        self.value = ceiling
        self._cut_at = -math.inf

    def observe(self, in_flight: int, engine_wait_s: float) -> int:
        """Adjust the limit to one count; returns the limit now."""
        if engine_wait_s > self.target_wait_s:
            now = self._clock()
            if now - self._cut_at >= self.cut_every_s:
                self._cut_at = now
                cut = math.floor(in_flight * 0.9)
                self.value = max(self.floor, min(self.value, cut))
        elif in_flight < self.value / 2:
            # Nothing queues and most of the limit is unused: the overload it was
            # cut for is over, so the next burst gets the whole ceiling.
            self.value = self.ceiling
        elif in_flight >= self.value * 0.8:
            self.value = min(self.ceiling, self.value + max(1, self.value // 20))
        return self.value


class Admission:
    def __init__(
        self,
        count_in_flight: CountInFlight,
        *,
        limit: int,
        target_wait_s: float = 0.0,
        wait_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``limit`` orders in flight at most (0: no limit); with a
        ``target_wait_s``, fewer while orders queue inside the engine. A request
        waits up to ``wait_s`` for room before it is refused."""
        self.wait_s = wait_s
        self._count_in_flight = count_in_flight
        self.adaptive = (
            AdaptiveLimit(limit, target_wait_s=target_wait_s, clock=clock)
            if limit > 0 and target_wait_s > 0
            else None
        )
        self.ceiling = limit
        self.advice = RetryAdvice(clock=clock)
        self._counted = 0
        self._uncounted: list[int] = []  # positions of orders accepted here
        self._as_of = 0  # the log position the count includes every order up to
        self._held = 0  # room held by requests whose append has not answered yet
        self._waiters: deque[asyncio.Future[None]] = deque()  # in arrival order

    @property
    def in_flight(self) -> int:
        return self._counted + len(self._uncounted) + self._held

    @property
    def limit(self) -> int:
        return self.adaptive.value if self.adaptive else self.ceiling

    @property
    def waiting(self) -> int:
        """Requests waiting in ``acquire`` for room."""
        return len(self._waiters)

    def hold(self) -> bool:
        """Hold room for one order about to be recorded; False when there is none.

        A limit of 0 admits every order. Each hold is given back by ``release``.
        """
        if not self._has_room():
            return False
        self._held += 1
        return True

    async def acquire(self) -> bool:
        """``hold``, waiting up to ``wait_s`` for room when there is none.

        Requests that wait get room in the order they came, each as soon as a
        count or a release shows it, ahead of requests that come later: a client
        that has waited is not outrun by one that has not, and room that appears
        between two polls is not left standing. Waiting a moment here costs the
        gateway one request; refusing costs one per retry. Only as many wait as
        room is expected for within ``wait_s`` at the rate orders were admitted
        lately: the rest would wait only to be refused, so they are refused now.
        """
        self._hand_over()  # waiters first, and cancelled ones out of the way
        if not self._waiters and self.hold():
            return True
        expected = math.ceil(self.advice.room_per_s() * self.wait_s)
        if self.wait_s <= 0 or len(self._waiters) >= max(1, expected):
            return False
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.wait_s):
                await waiter
        except TimeoutError:
            # Room handed over just as the wait ran out is still ours.
            return waiter.done() and not waiter.cancelled()
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release(None)  # handed over, but the request is gone
            raise
        finally:
            # A timeout or a hang-up cancels the task and, with it, the future
            if not waiter.done():
                waiter.cancel()
            if waiter.cancelled():
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
        return True

    def release(self, recorded_at: int | None) -> None:
        """Give back held room: the order was recorded at this global position,
        or nothing was recorded (a replay, a refusal, an error)."""
        self._held -= 1
        if recorded_at is not None:
            self.advice.admitted()
            # A count taken while the append was answering may hold the order
            # already: then this release is room.
            if recorded_at > self._as_of:
                self._uncounted.append(recorded_at)
        self._hand_over()

    def _has_room(self) -> bool:
        return self.limit == 0 or self.in_flight < self.limit

    def _hand_over(self) -> None:
        """Give the room there is to waiting requests, first come first served;
        the room is held for each before it wakes, so nothing can take it."""
        while self._waiters and (self._waiters[0].done() or self._has_room()):
            waiter = self._waiters.popleft()
            if waiter.done():  # cancelled; its request is on its way out
                continue
            self._held += 1
            waiter.set_result(None)

    def retry_after(self) -> float:
        """Seconds a client refused now should wait before asking again."""
        seconds = self.advice.refused()
        RETRY_AFTER.set(seconds)
        return seconds

    async def refresh(self) -> None:
        counted = await self._count_in_flight()
        self._counted = counted.orders
        self._as_of = counted.as_of
        self._uncounted = [p for p in self._uncounted if p > counted.as_of]
        if self.adaptive:
            before = self.adaptive.value
            after = self.adaptive.observe(self.in_flight, counted.engine_wait_s)
            if after < before:
                logger.info(
                    "admission limit cut",
                    extra={
                        "kind": "admission_limit",
                        "limit": after,
                        "was": before,
                        "in_flight": self.in_flight,
                        "engine_wait_s": round(counted.engine_wait_s, 3),
                    },
                )
        self._hand_over()
        ORDERS_IN_FLIGHT.set(self.in_flight)
        ADMISSION_LIMIT.set(self.limit)
        ENGINE_WAIT.set(counted.engine_wait_s)

    async def run(self) -> None:
        """Refresh the count forever (after the first, taken at start); a failed
        count keeps the last one."""
        await every(
            REFRESH_S,
            self.refresh,
            cannot="count orders in flight",
            log=logger,
            wait_first=True,
        )
