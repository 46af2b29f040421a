"""Meteora DLMM bins: prices, fees, walking bins both ways, worked numbers."""

from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from shared.domain import dlmm
from shared.domain.liquidity import InsufficientLiquidityError

SOL, USDC = 10**9, 10**6
PARAMS = dlmm.FeeParameters(bin_step=4)
MID = dlmm.bin_id_for_price(163.65 * USDC / SOL, 4)
BOOK = dlmm.spread_liquidity(  # trading.md §5.1 Meteora profile
    params=PARAMS,
    active_id=MID,
    total_x=30_319 * SOL,
    total_y=1_249_000 * USDC,
    half_width=60,
    sigma=25,
)

amounts = st.integers(min_value=0, max_value=5_000 * SOL)


def _cost(sell_sol: int) -> Decimal:
    """Total cost vs. mid of selling ``sell_sol`` SOL into BOOK, as a fraction."""
    swap = dlmm.swap_exact_in(BOOK, sell_sol * SOL, x_to_y=True, now_s=0)
    at_mid = Decimal(sell_sol * SOL) * dlmm.bin_price(MID, 4)
    return 1 - Decimal(swap.amount_out) / at_mid


def test_active_bin_of_the_sol_usdc_profile() -> None:
    """163.65 USDC per SOL is bin -4526 at a 4 bps step (the Gateway mock pool)."""
    assert MID == -4526


def test_fees_match_the_sdk_formulas() -> None:
    """Base 0.04 %; 10 bins crossed adds 0.0064 %; the 35-bin cap adds 0.0784 %."""
    assert dlmm.base_fee_rate(PARAMS) == 400_000
    assert dlmm.variable_fee_rate(PARAMS, 10 * 10_000) == 64_000
    assert dlmm.variable_fee_rate(PARAMS, 350_000) == 784_000


@pytest.mark.parametrize("sell_sol", [1, 10, 100])
def test_small_sells_cost_only_the_base_fee(sell_sol: int) -> None:
    """§3.5: up to 100 SOL stays in the active bin and costs 0.040 %."""
    assert abs(_cost(sell_sol) - Decimal("0.0004")) < Decimal("0.000001")


@pytest.mark.parametrize(
    ("sell_sol", "cost", "bins"), [(1_000, "0.00103", 4), (3_000, "0.00272", 12)]
)
def test_large_sells_walk_bins(sell_sol: int, cost: str, bins: int) -> None:
    """§3.5: 1 000 SOL crosses ~4 bins (≈0.10 %), 3 000 SOL ~12 (≈0.27 %).

    The bin shape is an assumption of the note, so the match is within 0.03 %.
    """
    swap = dlmm.swap_exact_in(BOOK, sell_sol * SOL, x_to_y=True, now_s=0)

    assert abs(_cost(sell_sol) - Decimal(cost)) < Decimal("0.0003")
    assert abs((MID - swap.book.active_id) - bins) <= 1


def test_running_out_of_bins_raises() -> None:
    """Asking for more than the book holds is insufficient liquidity."""
    with pytest.raises(InsufficientLiquidityError):
        dlmm.swap_exact_out(
            BOOK, dlmm.available_out(BOOK, x_to_y=True) + 1, x_to_y=True, now_s=0
        )


def test_volatility_decays_after_the_filter_period() -> None:
    """A swap after t_f keeps R/10 000 of the accumulator as its reference."""
    walked = dlmm.swap_exact_in(BOOK, 3_000 * SOL, x_to_y=True, now_s=0).book
    later = dlmm.swap_exact_in(walked, 1, x_to_y=True, now_s=60).book

    assert later.volatility.reference == walked.volatility.accumulator // 2
    assert later.volatility.index_reference == walked.active_id


@settings(max_examples=50)
@given(amounts, st.booleans())
def test_output_is_bounded_by_liquidity(amount: int, x_to_y: bool) -> None:
    """ExactIn never pays out more than the side it drains holds."""
    try:
        swap = dlmm.swap_exact_in(BOOK, amount, x_to_y=x_to_y, now_s=0)
    except InsufficientLiquidityError:
        return
    assert 0 <= swap.amount_out <= dlmm.available_out(BOOK, x_to_y=x_to_y)


@settings(max_examples=50)
@given(amounts, amounts)
def test_output_is_monotone_in_input(a: int, b: int) -> None:
    """Paying more never gives less."""
    low, high = sorted((a, b))

    out_low = dlmm.swap_exact_in(BOOK, low, x_to_y=True, now_s=0).amount_out
    out_high = dlmm.swap_exact_in(BOOK, high, x_to_y=True, now_s=0).amount_out
    assert out_low <= out_high


@settings(max_examples=50)
@given(st.integers(min_value=1, max_value=400_000 * USDC))
def test_value_in_the_book_never_decreases(amount: int) -> None:
    """Valued at the start price, the bins hold at least as much after a buy."""
    swap = dlmm.swap_exact_in(BOOK, amount, x_to_y=False, now_s=0)
    price = dlmm.bin_price(MID, 4)

    def value(book: dlmm.DlmmBook) -> Decimal:
        return sum((b.x * dlmm.bin_price(b.id, 4) + b.y for b in book.bins), Decimal(0))

    assert value(swap.book) >= value(BOOK) - price  # one raw unit of rounding


@settings(max_examples=50)
@given(st.integers(min_value=1, max_value=1_200_000 * USDC), st.booleans())
def test_exact_out_inverts_exact_in(want: int, x_to_y: bool) -> None:
    """Paying what ExactOut asks buys at least the amount, within one unit per bin."""
    if not x_to_y:
        want //= 200  # X is scarcer in raw units; stay inside the book
    exact_out = dlmm.swap_exact_out(BOOK, want, x_to_y=x_to_y, now_s=0)
    exact_in = dlmm.swap_exact_in(BOOK, exact_out.amount_in, x_to_y=x_to_y, now_s=0)

    crossed = abs(exact_out.book.active_id - MID) + 1
    assert exact_in.amount_out >= want - crossed
