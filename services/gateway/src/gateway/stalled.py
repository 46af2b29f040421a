"""Stalled orders: in flight, with nothing recorded for longer than a healthy
order ever waits.

An order stalls when its trigger is parked (a defect in a handler) or when the
engine is far behind. Nothing here acts on it: the operator finds the cause,
fixes it and re-drives (``make redrive``). The gauge is for alerting, the warning
names the orders once each, when they first stall.
"""

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, NamedTuple
from uuid import UUID

from shared import metrics
from shared.domain.events import IN_FLIGHT_STATUSES, OrderStatus
from shared.service.periodic import every

logger = logging.getLogger(__name__)

CHECK_EVERY_S: Final = 5.0
NAMED_PER_STATUS: Final = 10  # the oldest stalled orders a warning names


class Stalled(NamedTuple):
    """The orders of one status that are stalled."""

    status: OrderStatus
    orders: int
    oldest: Sequence[UUID]  # up to NAMED_PER_STATUS, longest stalled first
    longest_s: float


FindStalled = Callable[[float], Awaitable[Sequence[Stalled]]]


class StalledWatch:
    """Looks while ``leading`` (the replica that projects the read model), so that
    with several gateways each order is counted and named once; the others show
    0."""

    def __init__(
        self,
        find: FindStalled,
        *,
        after_s: float,
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        self._find = find
        self._after_s = after_s
        self._leading = leading
        self._named: set[UUID] = set()

    async def check(self) -> Sequence[Stalled]:
        """One look: set the gauge, warn about orders not named before."""
        found = await self._find(self._after_s) if self._leading() else []
        counts = {s.status: s.orders for s in found}
        for status in IN_FLIGHT_STATUSES:
            gauge = metrics.ORDERS_STALLED.labels(status=status.value)
            gauge.set(counts.get(status, 0))
        # A failed look leaves the counts as they were (the orders are most
        # likely still stalled); this is what tells a reader how old they are.
        metrics.ORDERS_STALLED_CHECKED.set_to_current_time()
        named: set[UUID] = set()
        for stalled in found:
            named.update(stalled.oldest)
            new = [o for o in stalled.oldest if o not in self._named]
            if new:
                logger.warning(
                    "orders stalled",
                    extra={
                        "status": stalled.status.value,
                        "stalled": stalled.orders,
                        "longest_s": round(stalled.longest_s, 1),
                        "order_ids": [str(o) for o in new],
                        "hint": "a parked trigger? see the parking queue, then"
                        " make redrive",
                    },
                )
        # An order that moved on, or dropped out of the oldest named, may be
        # named again should it stall (again).
        self._named = named
        return found

    async def run(self) -> None:
        await every(
            CHECK_EVERY_S, self.check, cannot="look for stalled orders", log=logger
        )
