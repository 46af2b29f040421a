"""Quoting an order: ask every venue at once, then plan the route.

Used by the router for each attempt and by the executor to re-quote a route that
went stale before it could be built. A venue that does not answer is left out;
only when none answers is the attempt without a quote.
"""

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from shared.domain.events import OrderAccepted
from shared.domain.pairs import SUPPORTED_PAIRS
from shared.domain.pools import CpPool, DlmmPool
from shared.domain.quotes import RoutePlan, Venue, VenueQuote
from shared.domain.routing import plan_route
from shared.venues.port import QuoteUnavailableError, VenueClient


async def quote_and_plan(
    venues: Mapping[Venue, VenueClient],
    order: OrderAccepted,
    *,
    validity: timedelta,
) -> tuple[tuple[VenueQuote, ...], RoutePlan]:
    """Raise ``QuoteUnavailableError`` when no venue answers and
    ``InsufficientLiquidityError`` when the answers cannot fill the order."""
    pair = SUPPORTED_PAIRS[order.token_pair]
    answers = await asyncio.gather(
        *(venue.pool(pair) for venue in venues.values()), return_exceptions=True
    )
    pools: dict[Venue, CpPool | DlmmPool] = {}
    refusals: list[str] = []
    for venue, answer in zip(venues, answers, strict=True):
        if isinstance(answer, QuoteUnavailableError):
            refusals.append(str(answer))
            continue
        if isinstance(answer, BaseException):
            raise answer
        pools[venue] = answer
    if not pools:
        # Each venue's own reason is what a post-mortem needs, not just that all failed.
        raise QuoteUnavailableError(f"no venue answered: {'; '.join(refusals)}")
    return plan_route(
        pools,
        pair=pair,
        side=order.side,
        amount=order.amount,
        slippage_bps=order.slippage_bps,
        quoted_at=datetime.now(UTC),
        validity=validity,
    )
