"""Routing: best single venue, optimal splits, bounds and reasons."""

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shared.domain import dlmm
from shared.domain.liquidity import InsufficientLiquidityError
from shared.domain.pairs import SUPPORTED_PAIRS, Side
from shared.domain.pools import CpPool, DlmmPool, fill_exact_in, fill_exact_out
from shared.domain.quotes import RoutePlan, Venue, VenueQuote
from shared.domain.routing import _golden_section, _shares, plan_route

SOL, USDC = 10**9, 10**6
PAIR = SUPPORTED_PAIRS["SOL-USDC"]
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def cp(venue: Venue, sol: int, price: float, fee_bps: int = 25) -> CpPool:
    return CpPool(venue, PAIR, sol * SOL, int(sol * price * USDC), 0, fee_bps, 10_000)


def book(price: float, sol: int, usdc: int, bin_step: int = 4) -> DlmmPool:
    active = dlmm.bin_id_for_price(price * USDC / SOL, bin_step)
    params = dlmm.FeeParameters(bin_step=bin_step)
    return DlmmPool(
        Venue.METEORA,
        PAIR,
        dlmm.spread_liquidity(
            params=params,
            active_id=active,
            total_x=sol * SOL,
            total_y=usdc * USDC,
            half_width=60,
            sigma=25,
        ),
        0,
    )


def route(
    pools: Iterable[CpPool | DlmmPool],
    amount: int,
    side: Side = Side.SELL,
    slippage_bps: int = 50,
) -> tuple[tuple[VenueQuote, ...], RoutePlan]:
    return plan_route(
        {p.venue: p for p in pools},
        pair=PAIR,
        side=side,
        amount=Decimal(amount),
        slippage_bps=slippage_bps,
        read_at=dict.fromkeys(Venue, NOW),
        validity=timedelta(seconds=2),
        now_s=0,
    )


def brute_force(
    p1: CpPool | DlmmPool, p2: CpPool | DlmmPool, total: int, side: Side
) -> int:
    """Best total over a two-stage grid of splits (out for sells, -in for buys)."""

    def score(a1: int) -> int:
        try:
            if side is Side.SELL:
                return sum(
                    fill_exact_in(p, side, a, now_s=0).amount_out if a else 0
                    for p, a in ((p1, a1), (p2, total - a1))
                )
            return -sum(
                fill_exact_out(p, side, a, now_s=0).amount_in if a else 0
                for p, a in ((p1, a1), (p2, total - a1))
            )
        except InsufficientLiquidityError:
            return -(10**30)

    step = max(total // 200, 1)
    coarse = max(range(0, total + 1, step), key=score)
    fine = range(
        max(coarse - step, 0), min(coarse + step, total) + 1, max(step // 100, 1)
    )
    return max(score(a) for a in (*fine, 0, total))


# §4.2 worked example: Raydium-like 40 000 SOL at 163.5, Meteora-like CP at 160.0.
RAYDIUM = cp(Venue.RAYDIUM, 40_000, 163.5)
METEORA_CP = cp(Venue.METEORA, 20_000, 160.0, fee_bps=4)


@pytest.mark.parametrize(
    ("sell", "out", "shares", "gain"),
    [
        (50, Decimal("8144.41"), (10_000,), Decimal(0)),
        (500, Decimal("80556.09"), (9_296, 704), Decimal("1.8")),
        (2_000, Decimal("313844.99"), (7_344, 2_656), Decimal("101.6")),
    ],
)
def test_worked_split_example(
    sell: int, out: Decimal, shares: tuple[int, ...], gain: Decimal
) -> None:
    """§4.2: all to pool 1 at 50 SOL; 93 % at 500 SOL (+1.8 bps); 73 % at 2 000."""
    _, plan = route([RAYDIUM, METEORA_CP], sell)

    assert plan.out_amount.quantize(Decimal("0.01")) == out
    assert tuple(leg.bps for leg in plan.legs) == shares
    assert abs(plan.gain_bps_over_best_single - gain) < Decimal("0.1")
    assert sum(leg.bps for leg in plan.legs) == 10_000


def test_split_reason_names_shares_and_gain() -> None:
    """A split's reason says the shares and what it gains over the best venue."""
    _, plan = route([RAYDIUM, METEORA_CP], 2_000)

    assert (
        plan.reason
        == "split 73/27 (raydium/meteora) gains 101.6 bps over raydium alone"
    )


def test_single_reason_compares_the_venues() -> None:
    """A single-venue plan says by how much it beats the other venue."""
    _, plan = route([RAYDIUM, METEORA_CP], 50)

    assert plan.reason == "raydium gives 2.10% more than meteora"


def test_single_reason_names_the_venue_that_cannot_fill() -> None:
    """A venue quoted but too thin for the order is named as the one that cannot."""
    thin = cp(Venue.METEORA, 10, 170.0)

    _, plan = route([RAYDIUM, thin], 50, side=Side.BUY)

    assert plan.reason == "only raydium can fill the order (meteora cannot)"


MATRIX_POOLS = [
    (RAYDIUM, METEORA_CP),
    (cp(Venue.RAYDIUM, 40_078, 163.5), book(163.65, 30_319, 1_249_000)),
    (cp(Venue.RAYDIUM, 40_078, 163.5), book(167.0, 3_000, 120_000)),
    (cp(Venue.RAYDIUM, 5_000, 161.0), book(160.0, 30_000, 5_000_000, bin_step=10)),
]


@pytest.mark.parametrize("pools", MATRIX_POOLS)
@pytest.mark.parametrize("side", [Side.SELL, Side.BUY])
@pytest.mark.parametrize("amount", [1, 75, 600, 2_500])
def test_plan_matches_brute_force_and_beats_single(
    pools: tuple[CpPool | DlmmPool, CpPool | DlmmPool], side: Side, amount: int
) -> None:
    """The plan is within 0.01 % of brute force and never worse than one venue."""
    quotes, plan = route(pools, amount, side=side)
    best = brute_force(*pools, amount * SOL, side)

    if side is Side.SELL:
        got = int(plan.out_amount * USDC)
        assert got >= best * (1 - Decimal("0.0001"))
        assert all(plan.out_amount >= q.out_amount for q in quotes)
    else:
        got = int(plan.in_amount * USDC)
        assert got <= -best * (1 + Decimal("0.0001"))
        assert all(plan.in_amount <= q.in_amount for q in quotes)


def test_exact_in_bounds() -> None:
    """A sell's min_amount_out is the quote less slippage; max_amount_in the input."""
    quotes, plan = route([RAYDIUM], 10, slippage_bps=100)

    assert plan.max_amount_in == plan.in_amount == Decimal(10)
    assert plan.min_amount_out == (plan.out_amount * Decimal("0.99")).quantize(
        Decimal("0.000001"), rounding="ROUND_DOWN"
    )
    assert quotes[0].expires_at == NOW + timedelta(seconds=2)


def test_exact_out_bounds() -> None:
    """A buy receives exactly the amount; max_amount_in adds slippage, rounded up."""
    _, plan = route([RAYDIUM], 10, side=Side.BUY, slippage_bps=100)

    assert plan.out_amount == plan.min_amount_out == Decimal(10)
    assert plan.max_amount_in >= plan.in_amount * Decimal("1.01")
    assert plan.max_amount_in - plan.in_amount * Decimal("1.01") < Decimal("0.000001")


def test_no_venue_can_fill() -> None:
    """A buy bigger than every pool raises InsufficientLiquidityError."""
    with pytest.raises(InsufficientLiquidityError):
        route([cp(Venue.RAYDIUM, 100, 160.0), book(160.0, 50, 1_000)], 500, Side.BUY)


def test_split_when_no_venue_fills_alone() -> None:
    """A buy neither pool can fill alone but both together can is split."""
    quotes, plan = route(
        [cp(Venue.RAYDIUM, 100, 160.0), book(160.0, 80, 1_000)], 120, Side.BUY
    )

    assert [q.venue for q in quotes] == []
    assert len(plan.legs) == 2
    assert plan.out_amount == Decimal(120)


@pytest.mark.parametrize(
    ("peak", "within"),
    [
        (10**9 - 1, 999_998),  # one venue best: an end, to a thousandth
        (1, 999_998),
        (10**9 - 2_000, 999_998),  # inside the last thousandth: that end
        (123_456_789, 999),  # a real split: to a millionth
        (10**9 - 5_000_000, 999),
    ],
)
def test_split_search_finds_the_peak_of_a_concave_total(peak: int, within: int) -> None:
    evaluated: list[int] = []

    def total(a1: int) -> int:
        evaluated.append(a1)
        return -abs(a1 - peak) * 7

    found = _golden_section(total, 1, 10**9 - 1)

    assert abs(found - peak) <= within
    if within > 999:
        assert len(evaluated) <= 4  # the slope at the end settles it


def test_a_sell_that_buys_nothing_is_no_fill() -> None:
    """Dust whose output rounds to zero on every venue cannot be routed."""
    pools = {
        p.venue: p for p in (cp(Venue.RAYDIUM, 100, 160.0), book(160.0, 50, 8_000))
    }

    with pytest.raises(InsufficientLiquidityError, match=r"fill 0\.000000001 SOL"):
        plan_route(
            pools,
            pair=PAIR,
            side=Side.SELL,
            amount=Decimal("0.000000001"),
            slippage_bps=50,
            read_at=dict.fromkeys(Venue, NOW),
            validity=timedelta(seconds=2),
            now_s=0,
        )


def test_a_sell_of_a_few_raw_units_still_bounds_what_it_receives() -> None:
    """Ten lamports buy one raw unit of USDC; the slippage tolerance would round the
    minimum down to zero, a swap that accepts receiving nothing. The minimum is
    kept at one raw unit instead."""
    quotes, plan = plan_route(
        {RAYDIUM.venue: RAYDIUM},
        pair=PAIR,
        side=Side.SELL,
        amount=Decimal("0.00000001"),
        slippage_bps=50,
        read_at=dict.fromkeys(Venue, NOW),
        validity=timedelta(seconds=2),
        now_s=0,
    )

    assert plan.out_amount == Decimal("0.000001")
    assert plan.min_amount_out == quotes[0].min_amount_out == Decimal("0.000001")


@pytest.mark.parametrize(
    ("bps", "shown"),
    [((7_344, 2_656), "73/27"), ((9_960, 40), "99.6/0.4"), ((9_950, 50), "99.5/0.5")],
)
def test_a_split_reason_never_shows_a_share_as_zero(
    bps: tuple[int, int], shown: str
) -> None:
    assert _shares(bps) == shown
