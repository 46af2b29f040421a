"""Raydium AMM v4 constant-product math: rounding, invariants and worked numbers."""

from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from shared.domain import amm
from shared.domain.liquidity import InsufficientLiquidityError

SOL, USDC = 10**9, 10**6
X, Y = 40_078 * SOL, 6_553_287 * USDC  # trading.md §3.5, the Gateway mock pool

reserves = st.integers(min_value=10**3, max_value=10**18)
amounts = st.integers(min_value=0, max_value=10**18)


def test_fee_is_25_bps_rounded_up() -> None:
    """The input fee is ⌈a·25/10 000⌉."""
    assert amm.swap_base_in(10_000, X, Y)[1] == 25
    assert amm.swap_base_in(1, X, Y)[1] == 1
    assert amm.swap_base_in(401, X, Y)[1] == 2


@pytest.mark.parametrize(
    ("sell_sol", "usdc_out", "impact"),
    [
        (1, Decimal("163.10"), Decimal("0.00002")),
        (10, Decimal("1630.63"), Decimal("0.00025")),
        (100, Decimal("16269.87"), Decimal("0.00248")),
        (1_000, Decimal("159142.72"), Decimal("0.02428")),
        (5_000, Decimal("725263.23"), Decimal("0.11067")),
    ],
)
def test_worked_numbers_of_trading_md(
    sell_sol: int, usdc_out: Decimal, impact: Decimal
) -> None:
    """§3.5's table is reproduced within 0.001 % (it used a rounded mid)."""
    out, fee = amm.swap_base_in(sell_sol * SOL, X, Y)

    assert abs(Decimal(out) / USDC - usdc_out) / usdc_out < Decimal("0.00001")
    got = amm.price_impact(sell_sol * SOL - fee, X)
    assert abs(got - impact) < Decimal("0.00001")


def test_exact_out_rounds_against_the_trader() -> None:
    """ExactOut asks ⌈⌈x·out/(y-out)⌉·10 000/9 975⌉."""
    paid, fee = amm.swap_base_out(163 * USDC, X, Y)

    before_fee = -(-X * 163 * USDC // (Y - 163 * USDC))
    assert paid == -(-before_fee * 10_000 // 9_975)
    assert fee == paid - before_fee


def test_exact_out_cannot_drain_the_pool() -> None:
    """Asking for the whole reserve (or more) is insufficient liquidity."""
    with pytest.raises(InsufficientLiquidityError):
        amm.swap_base_out(Y, X, Y)


@given(reserves, reserves, amounts)
def test_output_stays_below_the_reserve(x: int, y: int, a: int) -> None:
    """No input, however large, empties the output side."""
    out, _ = amm.swap_base_in(a, x, y)

    assert 0 <= out < y


@given(reserves, reserves, amounts, amounts)
def test_output_is_monotone_in_input(x: int, y: int, a: int, b: int) -> None:
    """Paying more never gives less."""
    low, high = sorted((a, b))

    assert amm.swap_base_in(low, x, y)[0] <= amm.swap_base_in(high, x, y)[0]


@given(reserves, reserves, amounts)
def test_invariant_never_decreases(x: int, y: int, a: int) -> None:
    """x·y after the swap (fee kept in the vault) is at least x·y before."""
    out, _ = amm.swap_base_in(a, x, y)

    assert (x + a) * (y - out) >= x * y


@given(reserves, reserves, st.integers(min_value=1, max_value=10**18))
def test_exact_out_inverts_exact_in(x: int, y: int, want: int) -> None:
    """Paying what ExactOut asks buys at least the amount as ExactIn."""
    want = min(want, y - 1)
    paid, _ = amm.swap_base_out(want, x, y)

    assert amm.swap_base_in(paid, x, y)[0] >= want
    assert (x + paid) * (y - want) >= x * y
