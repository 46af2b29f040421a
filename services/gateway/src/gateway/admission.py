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
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from shared.metrics import ORDERS_IN_FLIGHT

logger = logging.getLogger(__name__)

# (orders in flight, the log position the count is as of), read in one snapshot
CountInFlight = Callable[[], Awaitable[tuple[int, int]]]

REFRESH_S: Final = 0.25
RETRY_AFTER_S: Final = 1  # a few refreshes: room shows up as soon as orders finish


class Admission:
    def __init__(self, count_in_flight: CountInFlight, *, limit: int) -> None:
        self._count_in_flight = count_in_flight
        self.limit = limit
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
        # A count taken while the append was answering may hold the order already.
        if recorded_at is not None and recorded_at > self._as_of:
            self._uncounted.append(recorded_at)

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
