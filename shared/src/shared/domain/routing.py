"""Pure routing: quote every venue for the whole order, then pick the best plan.

A plan is the best single venue, or a split over two venues when it beats that by
more than ``min_split_gain_bps`` (a second leg costs compute units and accounts).
The split is solved in closed form for two constant-product pools (trading.md §4.2)
and by golden-section search otherwise: each venue's output is concave in its input,
so the total over a split is concave in the split.
"""

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from shared.domain.liquidity import InsufficientLiquidityError
from shared.domain.pairs import Pair, Side, Token
from shared.domain.pools import (
    CpPool,
    DlmmPool,
    Fill,
    capacity,
    fill_exact_in,
    fill_exact_out,
)
from shared.domain.quotes import RouteLeg, RoutePlan, Venue, VenueQuote

__all__ = ["InsufficientLiquidityError", "plan_route"]

BPS = 10_000
MIN_SPLIT_GAIN_BPS = Decimal(1)
_IMPACT_QUANTUM = Decimal("1e-8")
_SPLIT_RESOLUTION = 1_000_000
_END_PROBE = 1_000
_INVPHI = (math.sqrt(5) - 1) / 2
_INFEASIBLE = -(10**40)  # the score of a split a pool cannot fill


@dataclass(frozen=True, slots=True)
class _Order:
    side: Side
    amount_raw: int  # base units paid (sell) or received (buy)
    in_token: Token
    out_token: Token
    now_s: int | None

    @property
    def exact_in(self) -> bool:
        return self.side is Side.SELL


def plan_route(
    pools: Mapping[Venue, CpPool | DlmmPool],
    *,
    pair: Pair,
    side: Side,
    amount: Decimal,
    slippage_bps: int,
    read_at: Mapping[Venue, datetime],
    validity: timedelta,
    now_s: int | None = None,
    min_split_gain_bps: Decimal = MIN_SPLIT_GAIN_BPS,
) -> tuple[tuple[VenueQuote, ...], RoutePlan]:
    """Quotes for the whole ``amount`` on every venue that can fill it, and the plan.

    ``amount`` is in base tokens: paid for a sell (ExactIn), received for a buy
    (ExactOut). Raises ``InsufficientLiquidityError`` when nothing can fill it.

    A venue's quote holds for ``validity`` from ``read_at[venue]``, when that
    venue's pool was read: a pool read early is no fresher for a slower venue
    answering later.
    """
    in_token, out_token = pair.in_and_out(side)
    order = _Order(side, pair.base.to_raw(amount), in_token, out_token, now_s)
    if order.amount_raw <= 0:
        raise ValueError(f"amount {amount} is below one raw unit of {pair.base.symbol}")
    fills: dict[Venue, Fill] = {}
    for venue in sorted(pools):
        try:
            fills[venue] = _fill(pools[venue], order, order.amount_raw)
        except InsufficientLiquidityError:
            continue
    quotes = tuple(
        _venue_quote(
            venue,
            fill,
            pools[venue].slot,
            order,
            slippage_bps,
            read_at[venue] + validity,
        )
        for venue, fill in fills.items()
    )
    single = _best_single(fills, order)
    split = _best_split(pools, order)
    if single is None and split is None:
        raise InsufficientLiquidityError(
            f"no venue can fill {amount:f} {pair.base.symbol} ({side})"
        )
    if split is not None and (
        single is None
        or _gain_bps(split.total, fills[single], order) > min_split_gain_bps
    ):
        return quotes, _split_plan(split, fills, single, order, slippage_bps)
    assert single is not None  # noqa: S101 - narrowed by the branch above
    return quotes, _single_plan(single, fills, order, slippage_bps, pools=pools)


@dataclass(frozen=True, slots=True)
class _Split:
    legs: tuple[tuple[Venue, Fill], ...]
    total: int  # out for ExactIn, in for ExactOut


def _fill(pool: CpPool | DlmmPool, order: _Order, amount_raw: int) -> Fill:
    if not order.exact_in:
        return fill_exact_out(pool, order.side, amount_raw, now_s=order.now_s)
    fill = fill_exact_in(pool, order.side, amount_raw, now_s=order.now_s)
    if fill.amount_out <= 0:
        # Dust: the fee and rounding take everything. Paying for nothing is no
        # fill, and a price cannot be quoted for it.
        raise InsufficientLiquidityError(
            f"{amount_raw} raw units of {order.in_token.symbol} buy nothing"
        )
    return fill


def _other_side(fill: Fill, order: _Order) -> int:
    return fill.amount_out if order.exact_in else fill.amount_in


def _better(a: int, b: int, order: _Order) -> bool:
    return a > b if order.exact_in else a < b


def _best_single(fills: Mapping[Venue, Fill], order: _Order) -> Venue | None:
    best: Venue | None = None
    for venue, fill in fills.items():
        if best is None or _better(
            _other_side(fill, order), _other_side(fills[best], order), order
        ):
            best = venue
    return best


def _gain_bps(total: int, single: Fill, order: _Order) -> Decimal:
    reference = _other_side(single, order)
    gain = total - reference if order.exact_in else reference - total
    return Decimal(gain * BPS) / Decimal(reference)


def _best_split(
    pools: Mapping[Venue, CpPool | DlmmPool], order: _Order
) -> _Split | None:
    best: _Split | None = None
    for v1, v2 in itertools.combinations(sorted(pools), 2):
        split = _split_two(pools[v1], pools[v2], order)
        if split is not None and (
            best is None or _better(split.total, best.total, order)
        ):
            best = split
    return best


def _split_two(
    p1: CpPool | DlmmPool, p2: CpPool | DlmmPool, order: _Order
) -> _Split | None:
    """Best allocation of the order over two pools, both legs non-empty, or None."""
    total = order.amount_raw
    cap1 = capacity(p1, order.side, exact_in=order.exact_in, now_s=order.now_s)
    cap2 = capacity(p2, order.side, exact_in=order.exact_in, now_s=order.now_s)
    lo = max(1, total - cap2) if cap2 is not None else 1
    hi = min(total - 1, cap1) if cap1 is not None else total - 1
    if lo > hi:
        return None

    def score(a1: int) -> int:
        try:
            value = _other_side(_fill(p1, order, a1), order) + _other_side(
                _fill(p2, order, total - a1), order
            )
        except InsufficientLiquidityError:
            return _INFEASIBLE
        return value if order.exact_in else -value

    memo: dict[int, int] = {}

    def cached(a1: int) -> int:
        if a1 not in memo:
            memo[a1] = score(a1)
        return memo[a1]

    if isinstance(p1, CpPool) and isinstance(p2, CpPool):
        guess = _cp_closed_form(p1, p2, order)
        candidates = {min(max(guess + d, lo), hi) for d in range(-2, 3)}
    else:
        candidates = {_golden_section(cached, lo, hi)}
    a1 = max(candidates | {lo, hi}, key=cached)
    if cached(a1) == _INFEASIBLE:  # no allocation where both legs fill
        return None
    legs = (
        (p1.venue, _fill(p1, order, a1)),
        (p2.venue, _fill(p2, order, total - a1)),
    )
    return _Split(legs, sum(_other_side(fill, order) for _, fill in legs))


def _cp_closed_form(p1: CpPool, p2: CpPool, order: _Order) -> int:
    """Closed-form optimum for pool 1's share (trading.md §4.2), unclamped."""
    (x1, y1, g1), (x2, y2, g2) = _cp_terms(p1, order), _cp_terms(p2, order)
    total = order.amount_raw
    if order.exact_in:
        k1, k2 = (g1 * x1 * y1).sqrt(), (g2 * x2 * y2).sqrt()
        a1 = (k1 * (x2 + g2 * total) - k2 * x1) / (k1 * g2 + k2 * g1)
    else:
        m1, m2 = (x1 * y1 / g1).sqrt(), (x2 * y2 / g2).sqrt()
        a1 = (m2 * y1 - m1 * (y2 - total)) / (m1 + m2)
    return int(a1.to_integral_value())


def _cp_terms(pool: CpPool, order: _Order) -> tuple[Decimal, Decimal, Decimal]:
    base, quote = Decimal(pool.base_reserve), Decimal(pool.quote_reserve)
    x, y = (base, quote) if order.side is Side.SELL else (quote, base)
    gamma = 1 - Decimal(pool.fee_numerator) / Decimal(pool.fee_denominator)
    return x, y, gamma


def _golden_section(f: Callable[[int], int], lo: int, hi: int) -> int:
    """Argmax of a concave function over the integers in [lo, hi].

    The search stops once the bracket is a millionth of the range, for a third
    fewer pool evaluations than narrowing to single raw units. The allocation is
    then that close to optimal; a DLMM leg is piecewise linear across bins, so
    the output given up can be first order in that distance, at most about a
    millionth of the order's output: far below the 1 bp a split must gain.
    """
    resolution = max(3, (hi - lo) // _SPLIT_RESOLUTION)
    probe = max(resolution, (hi - lo) // _END_PROBE)
    if hi - lo > 2 * probe:
        # Most orders are best left whole on one venue: the optimum is then at an
        # end of the range, and concavity shows it from the slope over the last
        # thousandth (four evaluations instead of a search of about thirty). The
        # optimum then lies within that thousandth, and the end gives up at most
        # its width times the slope's change across it (a DLMM bin step, 10 bps at
        # most): about a hundredth of a basis point. A shorter probe would compare
        # differences of a raw unit or less, which rounding decides.
        if f(hi) >= f(hi - probe) > _INFEASIBLE:
            return hi
        if f(lo) >= f(lo + probe) > _INFEASIBLE:
            return lo
    a, b = lo, hi
    # The interior point that survives a step is reused, so each step costs one
    # evaluation of both pools, not two.
    c, d = b - round((b - a) * _INVPHI), a + round((b - a) * _INVPHI)
    fc, fd = f(c), f(d)
    while b - a > resolution and c < d:
        if fc >= fd:
            b, d, fd = d, c, fc
            c = b - round((b - a) * _INVPHI)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + round((b - a) * _INVPHI)
            fd = f(d)
    if b - a <= 8:  # noqa: PLR2004 - a few points left: look at them all
        return max(range(a, b + 1), key=f)
    return max((a, c, (a + b) // 2, d, b), key=f)


def _venue_quote(  # noqa: PLR0917 - private helper, called once with names
    venue: Venue,
    fill: Fill,
    slot: int,
    order: _Order,
    slippage_bps: int,
    expires_at: datetime,
) -> VenueQuote:
    min_out, max_in = _bounds(fill.amount_in, fill.amount_out, order, slippage_bps)
    return VenueQuote(
        venue=venue,
        in_amount=order.in_token.to_units(fill.amount_in),
        out_amount=order.out_token.to_units(fill.amount_out),
        min_amount_out=min_out,
        max_amount_in=max_in,
        fee=order.in_token.to_units(fill.fee),
        price_impact_pct=fill.price_impact.quantize(_IMPACT_QUANTUM),
        slot=slot,
        expires_at=expires_at,
    )


def _bounds(
    amount_in: int, amount_out: int, order: _Order, slippage_bps: int
) -> tuple[Decimal, Decimal]:
    """(min_amount_out, max_amount_in): the fixed side is its own bound."""
    if order.exact_in:
        # At least one raw unit: rounded down to zero, the bound of a dust-sized
        # swap would accept receiving nothing.
        min_out = max(amount_out * (BPS - slippage_bps) // BPS, 1)
        return order.out_token.to_units(min_out), order.in_token.to_units(amount_in)
    max_in = -(-amount_in * (BPS + slippage_bps) // BPS)
    return order.out_token.to_units(amount_out), order.in_token.to_units(max_in)


def _single_plan(
    venue: Venue,
    fills: Mapping[Venue, Fill],
    order: _Order,
    slippage_bps: int,
    *,
    pools: Mapping[Venue, CpPool | DlmmPool],
) -> RoutePlan:
    fill = fills[venue]
    min_out, max_in = _bounds(fill.amount_in, fill.amount_out, order, slippage_bps)
    return RoutePlan(
        legs=(_leg(venue, fill, BPS, order),),
        in_amount=order.in_token.to_units(fill.amount_in),
        out_amount=order.out_token.to_units(fill.amount_out),
        min_amount_out=min_out,
        max_amount_in=max_in,
        gain_bps_over_best_single=Decimal(0),
        reason=_single_reason(venue, fills, pools, order),
    )


def _split_plan(
    split: _Split,
    fills: Mapping[Venue, Fill],
    single: Venue | None,
    order: _Order,
    slippage_bps: int,
) -> RoutePlan:
    (v1, f1), (v2, f2) = split.legs
    fixed1 = f1.amount_in if order.exact_in else f1.amount_out
    bps1 = min(max(round(Decimal(fixed1 * BPS) / order.amount_raw), 1), BPS - 1)
    legs = sorted(
        (_leg(v1, f1, bps1, order), _leg(v2, f2, BPS - bps1, order)),
        key=lambda leg: -leg.bps,
    )
    amount_in = f1.amount_in + f2.amount_in
    amount_out = f1.amount_out + f2.amount_out
    min_out, max_in = _bounds(amount_in, amount_out, order, slippage_bps)
    shares = _shares([leg.bps for leg in legs])
    names = "/".join(leg.venue for leg in legs)
    if single is None:
        gain, reason = Decimal(0), f"no venue fills alone; split {shares} ({names})"
    else:
        gain = _gain_bps(split.total, fills[single], order)
        reason = f"split {shares} ({names}) gains {gain:.1f} bps over {single} alone"
    return RoutePlan(
        legs=tuple(legs),
        in_amount=order.in_token.to_units(amount_in),
        out_amount=order.out_token.to_units(amount_out),
        min_amount_out=min_out,
        max_amount_in=max_in,
        gain_bps_over_best_single=gain.quantize(Decimal("0.01")),
        reason=reason,
    )


def _shares(bps: Sequence[int]) -> str:
    """``73/27``; a share that whole percents would show as 0 keeps its
    fraction (``99.6/0.4``)."""
    whole = [round(share / 100) for share in bps]
    if all(0 < percent < 100 for percent in whole):  # noqa: PLR2004 - percent
        return "/".join(map(str, whole))
    return "/".join(f"{share / 100:g}" for share in bps)


def _leg(venue: Venue, fill: Fill, bps: int, order: _Order) -> RouteLeg:
    return RouteLeg(
        venue=venue,
        bps=bps,
        in_amount=order.in_token.to_units(fill.amount_in),
        out_amount=order.out_token.to_units(fill.amount_out),
    )


def _single_reason(
    venue: Venue,
    fills: Mapping[Venue, Fill],
    pools: Mapping[Venue, CpPool | DlmmPool],
    order: _Order,
) -> str:
    others = [v for v in fills if v != venue]
    if not others:
        short = sorted(v for v in pools if v != venue)
        if not short:
            # The caller says why the others are missing: nothing here knows.
            return f"{venue} is the only venue quoted"
        return f"only {venue} can fill the order ({', '.join(short)} cannot)"
    runner_up = max(
        others,
        key=lambda v: _other_side(fills[v], order) * (1 if order.exact_in else -1),
    )
    best, second = (
        _other_side(fills[venue], order),
        _other_side(fills[runner_up], order),
    )
    if order.exact_in:
        pct = (Decimal(best) / Decimal(second) - 1) * 100
        return f"{venue} gives {pct:.2f}% more than {runner_up}"
    pct = (1 - Decimal(best) / Decimal(second)) * 100
    return f"{venue} costs {pct:.2f}% less than {runner_up}"
