"""What the swap program does with an instruction and the pools it names: pure.

All legs run in one transaction, so they succeed or fail together. A swap whose
total crosses its bound lands failed with SLIPPAGE_EXCEEDED: the network fee is
paid, no pool moves.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from shared.chain.transaction import SwapInstruction
from shared.domain.liquidity import InsufficientLiquidityError
from shared.domain.pairs import Side
from shared.domain.pools import (
    CpPool,
    DlmmPool,
    Fill,
    capacity,
    fill_exact_in,
    fill_exact_out,
)
from shared.domain.quotes import Venue
from shared.domain.retry import FailureClass

_SEARCH_STEPS = 64


@dataclass(frozen=True, slots=True)
class Execution:
    """The outcome of one instruction; ``pools`` holds the moved pools when ``ok``."""

    ok: bool
    error: FailureClass | None
    amount_in_raw: int
    amount_out_raw: int
    fills: tuple[tuple[Venue, Fill], ...]
    pools: Mapping[Venue, CpPool | DlmmPool]


@dataclass(frozen=True, slots=True)
class CompetingTrade:
    """Someone else's ExactIn swap in our direction, landing just before ours."""

    venue: Venue
    amount_in_raw: int
    fill: Fill


def execute(
    instruction: SwapInstruction,
    pools: Mapping[Venue, CpPool | DlmmPool],
    *,
    now_s: int,
) -> Execution:
    """Run every leg against ``pools`` and check the bound on the totals."""
    fills: list[tuple[Venue, Fill]] = []
    moved = dict(pools)
    try:
        for leg in instruction.legs:
            pool = moved[leg.venue]
            if instruction.side is Side.SELL:
                fill = fill_exact_in(pool, Side.SELL, leg.amount_raw, now_s=now_s)
            else:
                fill = fill_exact_out(pool, Side.BUY, leg.amount_raw, now_s=now_s)
            fills.append((leg.venue, fill))
            moved[leg.venue] = fill.pool
    except InsufficientLiquidityError:
        # On chain an emptied pool shows up as the bound not being met.
        return _failed(pools)
    amount_in = sum(fill.amount_in for _, fill in fills)
    amount_out = sum(fill.amount_out for _, fill in fills)
    if (
        amount_out < instruction.min_amount_out_raw
        or amount_in > instruction.max_amount_in_raw
    ):
        return _failed(pools)
    return Execution(True, None, amount_in, amount_out, tuple(fills), moved)


def competing_trade(
    instruction: SwapInstruction,
    pools: Mapping[Venue, CpPool | DlmmPool],
    *,
    now_s: int,
) -> CompetingTrade | None:
    """The smallest same-direction trade on our biggest leg's pool that fails us.

    ``None`` when even draining that pool would not (or our swap fails anyway).
    """
    if not execute(instruction, pools, now_s=now_s).ok:
        return None
    leg = max(instruction.legs, key=lambda leg: leg.bps)
    pool = pools[leg.venue]
    limit = capacity(pool, instruction.side, exact_in=True, now_s=now_s)

    def fails(amount: int) -> bool:
        try:
            fill = fill_exact_in(pool, instruction.side, amount, now_s=now_s)
        except InsufficientLiquidityError:
            return False
        after = {**pools, leg.venue: fill.pool}
        return not execute(instruction, after, now_s=now_s).ok

    high = max(leg.amount_raw if instruction.side is Side.SELL else leg.quoted_raw, 1)
    for _ in range(_SEARCH_STEPS):
        if limit is not None and high >= limit:
            high = limit
            break
        if fails(high):
            break
        high *= 2
    if not fails(high):
        return None
    low = 0  # invariant: fails(high) and not fails(low)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if fails(middle) else (middle, high)
    fill = fill_exact_in(pool, instruction.side, high, now_s=now_s)
    return CompetingTrade(leg.venue, high, fill)


def _failed(pools: Mapping[Venue, CpPool | DlmmPool]) -> Execution:
    return Execution(False, FailureClass.SLIPPAGE_EXCEEDED, 0, 0, (), pools)
