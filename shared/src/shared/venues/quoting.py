"""Quoting an order: ask every venue at once, then plan the route.

Used by the router for each attempt and by the executor to re-quote a route that
went stale before it could be built. A venue that does not answer is left out;
only when none answers is the attempt without a quote, or when the others cannot
fill the order without it.
"""

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.domain.events import OrderAccepted
from shared.domain.pairs import SUPPORTED_PAIRS
from shared.domain.pools import CpPool, DlmmPool
from shared.domain.quotes import RoutePlan, Venue, VenueQuote
from shared.domain.routing import InsufficientLiquidityError, plan_route
from shared.venues.port import QuoteUnavailableError, VenueClient


@dataclass(frozen=True, slots=True)
class Quoting:
    """How an attempt is quoted: the venues asked, how long a quote holds, and the
    chain's slot length (``slot_ms``), which gives a pool's slot its time."""

    venues: Mapping[Venue, VenueClient]
    validity: timedelta
    slot_ms: int

    async def quote_and_plan(
        self, order: OrderAccepted
    ) -> tuple[tuple[VenueQuote, ...], RoutePlan]:
        """Raise ``QuoteUnavailableError`` when no venue answers and
        ``InsufficientLiquidityError`` when the answers cannot fill the order.

        The quote is priced at the chain's time of the pools' slot, as the swap
        will be: a DLMM pool's variable fee depends on how long ago it last
        traded, and priced as of that last trade it shows a fee the swap would
        not pay.
        """
        pair = SUPPORTED_PAIRS[order.token_pair]
        answers = await asyncio.gather(
            *(venue.pool(pair) for venue in self.venues.values()),
            return_exceptions=True,
        )
        pools: dict[Venue, CpPool | DlmmPool] = {}
        read_at: dict[Venue, datetime] = {}
        refusals: list[str] = []
        for venue, answer in zip(self.venues, answers, strict=True):
            if isinstance(answer, QuoteUnavailableError):
                refusals.append(str(answer))
                continue
            if isinstance(answer, BaseException):
                raise answer
            pools[venue] = answer.pool
            read_at[venue] = answer.read_at
        if not pools:
            # Each venue's own reason is what a post-mortem needs, not just that
            # all failed.
            raise QuoteUnavailableError(f"no venue answered: {'; '.join(refusals)}")
        try:
            quotes, plan = plan_route(
                pools,
                pair=pair,
                side=order.side,
                amount=order.amount,
                slippage_bps=order.slippage_bps,
                read_at=read_at,
                validity=self.validity,
                now_s=max(pool.slot for pool in pools.values()) * self.slot_ms // 1_000,
            )
        except InsufficientLiquidityError as error:
            if not refusals:
                raise
            # The venue that did not answer might have filled it, alone or in a
            # split: that is worth another attempt, not a final refusal.
            raise QuoteUnavailableError(
                f"{error} among the venues that answered; {'; '.join(refusals)}"
            ) from error
        if refusals:
            # A plan chosen without a venue is explained by why it was missing.
            plan = plan.model_copy(
                update={"reason": f"{plan.reason}; {'; '.join(refusals)}"}
            )
        return quotes, plan
