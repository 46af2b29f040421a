"""When a route is too old to build, and when a fresh quote moved too far."""

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

from shared.domain.pairs import Side
from shared.domain.quotes import RoutePlan, VenueQuote

BPS = Decimal(10_000)


def route_expired(
    quotes: Iterable[VenueQuote],
    plan: RoutePlan,
    *,
    routed_at: datetime,
    validity: timedelta,
    now: datetime,
) -> bool:
    """Whether ``plan`` is too old to build on.

    A plan is as old as the quotes behind its legs. A split that no venue could
    fill alone has no such quote; it is as old as its record (``routed_at``, the
    ``RouteSelected`` event's), which follows the quoting by milliseconds.
    """
    used = {leg.venue for leg in plan.legs}
    behind = [quote.expires_at for quote in quotes if quote.venue in used]
    expires_at = min(behind) if behind else routed_at + validity
    return expires_at < now


def drifted_too_far(
    routed: RoutePlan, fresh: RoutePlan, *, side: Side, slippage_bps: int
) -> bool:
    """Whether the fresh plan is worse than the routed one by over half the tolerance.

    Building it anyway would spend most of the slippage budget before the
    transaction even lands; the attempt goes back to routing instead.
    """
    allowance = Decimal(slippage_bps) / 2 / BPS
    if side is Side.SELL:
        return fresh.out_amount < routed.out_amount * (1 - allowance)
    return fresh.in_amount > routed.in_amount * (1 + allowance)
