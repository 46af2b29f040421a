"""Raydium AMM v4 constant-product math in raw integer units, rounded as on chain."""

from decimal import Decimal

from shared.domain.liquidity import InsufficientLiquidityError

RAYDIUM_FEE_NUMERATOR = 25
RAYDIUM_FEE_DENOMINATOR = 10_000


def swap_base_in(
    amount_in: int,
    reserve_in: int,
    reserve_out: int,
    *,
    fee_numerator: int = RAYDIUM_FEE_NUMERATOR,
    fee_denominator: int = RAYDIUM_FEE_DENOMINATOR,
) -> tuple[int, int]:
    """``(amount_out, fee)`` for exactly ``amount_in`` in (``process_swap_base_in``).

    The fee is rounded up and the output down, so rounding always favours the pool.
    """
    _check_pool(reserve_in, reserve_out)
    if amount_in < 0:
        raise ValueError("amount_in must be non-negative")
    fee = -(-amount_in * fee_numerator // fee_denominator)
    net_in = amount_in - fee
    amount_out = reserve_out * net_in // (reserve_in + net_in)
    return amount_out, fee


def swap_base_out(
    amount_out: int,
    reserve_in: int,
    reserve_out: int,
    *,
    fee_numerator: int = RAYDIUM_FEE_NUMERATOR,
    fee_denominator: int = RAYDIUM_FEE_DENOMINATOR,
) -> tuple[int, int]:
    """``(amount_in, fee)`` to receive exactly ``amount_out`` (``swap_base_out``).

    Both divisions round up: the trader pays at least what the curve asks.
    """
    _check_pool(reserve_in, reserve_out)
    if amount_out < 0:
        raise ValueError("amount_out must be non-negative")
    if amount_out >= reserve_out:
        raise InsufficientLiquidityError(
            f"pool holds {reserve_out} raw units, {amount_out} asked"
        )
    before_fee = -(-reserve_in * amount_out // (reserve_out - amount_out))
    amount_in = -(-before_fee * fee_denominator // (fee_denominator - fee_numerator))
    return amount_in, amount_in - before_fee


def price_impact(net_in: int, reserve_in: int) -> Decimal:
    """Curve-only impact as a fraction, fees excluded: a'/(x + a') for constant product.

    This is the Raydium SDK's (spot - execution)/spot with the fee taken out first,
    expressed as a fraction rather than the SDK's percent.
    """
    if net_in <= 0:
        return Decimal(0)
    return Decimal(net_in) / Decimal(reserve_in + net_in)


def _check_pool(reserve_in: int, reserve_out: int) -> None:
    if reserve_in <= 0 or reserve_out <= 0:
        raise InsufficientLiquidityError("pool has an empty side")
