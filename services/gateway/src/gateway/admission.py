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

``Retry-After`` tells a refused client when room is likely to be there for it
(``RetryAdvice``): a fixed second would have every waiting client poll once a
second however long the queue, and each poll costs the gateway a request.
"""

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

from shared.metrics import ORDERS_IN_FLIGHT, RETRY_AFTER

logger = logging.getLogger(__name__)

# (orders in flight, the log position the count is as of), read in one snapshot
CountInFlight = Callable[[], Awaitable[tuple[int, int]]]

REFRESH_S: Final = 0.25


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

    With N gateways behind a balancer each sees its share of both rates, and the
    ratio is the same. Pure arithmetic on an injected clock: no I/O.
    """

    def __init__(
        self,
        *,
        window_s: float = 10.0,
        min_s: int = 1,
        max_s: int = 30,
        polls_per_room: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self.min_s = min_s
        self.max_s = max_s
        self.polls_per_room = polls_per_room
        self._clock = clock
        # One entry per second of the window: (second, admissions, waits given)
        self._seconds: deque[list[int]] = deque()

    def admitted(self) -> None:
        self._now()[1] += 1

    def refused(self) -> int:
        """Record a refusal and return the whole seconds to tell its client."""
        now = self._now()
        admitted = sum(second[1] for second in self._seconds)
        waiting = sum(second[2] for second in self._seconds) / self.window_s
        # No room at all in the window: as if one order had ended in it.
        room_per_s = max(admitted, 1) / self.window_s
        wait = waiting / (room_per_s * self.polls_per_room)
        seconds = min(self.max_s, max(self.min_s, math.ceil(wait)))
        now[2] += seconds
        RETRY_AFTER.set(seconds)
        return seconds

    def _now(self) -> list[int]:
        second = int(self._clock())
        while self._seconds and self._seconds[0][0] <= second - self.window_s:
            self._seconds.popleft()
        if not self._seconds or self._seconds[-1][0] != second:
            self._seconds.append([second, 0, 0])
        return self._seconds[-1]


class Admission:
    def __init__(
        self,
        count_in_flight: CountInFlight,
        *,
        limit: int,
        advice: RetryAdvice | None = None,
    ) -> None:
        self._count_in_flight = count_in_flight
        self.limit = limit
        self.advice = advice or RetryAdvice()
        self._counted = 0
        self._uncounted: list[int] = []  # positions of orders accepted here
        self._as_of = 0  # the log position the count includes every order up to
        self._held = 0  # room held by requests whose append has not answered yet

    @property
    def in_flight(self) -> int:
        return self._counted + len(self._uncounted) + self._held

    def hold(self) -> bool:
        """Hold room for one order about to be recorded; False when there is none.

        A limit of 0 admits every order. Each hold is given back by ``release``.
        """
        if self.limit > 0 and self.in_flight >= self.limit:
            return False
        self._held += 1
        return True

    def release(self, recorded_at: int | None) -> None:
        """Give back held room: the order was recorded at this global position,
        or nothing was recorded (a replay, a refusal, an error)."""
        self._held -= 1
        if recorded_at is None:
            return
        self.advice.admitted()
        # A count taken while the append was answering may hold the order already.
        if recorded_at > self._as_of:
            self._uncounted.append(recorded_at)

    def retry_after(self) -> int:
        """Seconds a client refused now should wait before asking again."""
        return self.advice.refused()

    async def refresh(self) -> None:
        counted, as_of = await self._count_in_flight()
        self._counted = counted
        self._as_of = as_of
        self._uncounted = [p for p in self._uncounted if p > as_of]
        ORDERS_IN_FLIGHT.set(self.in_flight)

    async def run(self) -> None:
        """Refresh the count forever (after the first, taken at start); a failed
        count keeps the last one."""
        failing = False
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self.refresh()
            except Exception:
                if not failing:
                    logger.warning("cannot count orders in flight", exc_info=True)
                failing = True
            else:
                failing = False
