"""Quoting an order: ask every venue at once, then plan the route.

Used by the router for each attempt and by the executor to re-quote a route that
went stale before it could be built. A venue that does not answer within the
timeout is left out, as one that refuses is; only when none answers is the attempt
without a quote, or when the others cannot fill the order without it.
"""

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.domain.events import OrderAccepted
from shared.domain.pairs import SUPPORTED_PAIRS, Pair
from shared.domain.pools import CpPool, DlmmPool
from shared.domain.quotes import RoutePlan, Venue, VenueQuote
from shared.domain.routing import InsufficientLiquidityError, plan_route
from shared.venues.port import PoolRead, QuoteUnavailableError, VenueClient

# Venues asked past their deadline, until their cancellation ends: held so they
# are not collected mid-cancellation, and their outcome is read so none is logged
# as never retrieved.
_STRAGGLERS: set["asyncio.Future[PoolRead]"] = set()


@dataclass(frozen=True, slots=True)
class Quoting:
    """How an attempt is quoted: the venues asked, how long each may take to answer
    (``timeout``), how long a quote holds, and the chain's slot length
    (``slot_ms``), which gives a pool's slot its time."""

    venues: Mapping[Venue, VenueClient]
    timeout: timedelta
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
        answers = await self._ask(pair)
        pools: dict[Venue, CpPool | DlmmPool] = {}
        read_at: dict[Venue, datetime] = {}
        refusals: list[str] = []
        for venue, answer in answers.items():
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

    async def _ask(self, pair: Pair) -> dict[Venue, PoolRead | BaseException]:
        """Every venue's answer, or why there is none, once all answered or the
        timeout passed.

        A venue still silent then is cancelled but not waited for: how long its
        cancellation takes (a database's cancel request, say) must not hold the
        route up.
        """
        if not self.venues:
            return {}
        asked = {
            venue: asyncio.ensure_future(client.pool(pair))
            for venue, client in self.venues.items()
        }
        late = set(asked.values())
        try:
            _, late = await asyncio.wait(late, timeout=self.timeout.total_seconds())
        finally:
            for task in late:
                task.cancel()
                _STRAGGLERS.add(task)
                task.add_done_callback(_forget)
        answers: dict[Venue, PoolRead | BaseException] = {}
        for venue, task in asked.items():
            if task in late or task.cancelled():
                ms = round(self.timeout.total_seconds() * 1_000)
                answers[venue] = QuoteUnavailableError(
                    f"{venue}: quote timed out after {ms} ms ({pair.symbol})"
                )
            else:
                answers[venue] = task.exception() or task.result()
        return answers


def _forget(task: "asyncio.Future[PoolRead]") -> None:
    _STRAGGLERS.discard(task)
    if not task.cancelled():
        task.exception()
