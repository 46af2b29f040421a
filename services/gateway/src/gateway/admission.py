"""Admission control: refuse new orders while too many are still in flight.

An engine that accepts more than it carries queues the excess, and a market order
that waits a minute for its route is worse for the client than a prompt refusal it
can retry. So the gateway keeps the number of orders in flight (neither confirmed
nor failed) under a limit and answers 503 with ``Retry-After`` above it.

The count comes from the gateway's own read model, refreshed in the background,
together with the position the read model had reached; orders this process
accepted after that position are added to it, so a burst cannot overshoot the
limit however far the read model trails.
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

    @property
    def in_flight(self) -> int:
        return self._counted + len(self._uncounted)

    @property
    def has_room(self) -> bool:
        """Whether a new order may be accepted now (a limit of 0 admits all)."""
        return self.limit <= 0 or self.in_flight < self.limit

    def accepted(self, position: int) -> None:
        """An order this process recorded, at this global position."""
        self._uncounted.append(position)

    async def refresh(self) -> None:
        counted, as_of = await self._count_in_flight()
        self._counted = counted
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
