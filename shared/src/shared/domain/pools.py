"""Pool states of both venue kinds and the pure swaps over them, in raw units.

``side`` names the direction: ``sell`` pays base and receives quote, ``buy`` pays
quote and receives base. ``fill_exact_in`` fixes what is paid, ``fill_exact_out``
what is received, so a sell order is ``fill_exact_in(pool, Side.SELL, …)`` and a buy
order ``fill_exact_out(pool, Side.BUY, …)``.
"""

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from shared.domain import amm, dlmm
from shared.domain.pairs import Pair, Side
from shared.domain.quotes import Venue


@dataclass(frozen=True, slots=True)
class CpPool:
    """A Raydium AMM v4 constant-product pool; reserves exclude pending PnL."""

    venue: Venue
    pair: Pair
    base_reserve: int
    quote_reserve: int
    slot: int
    fee_numerator: int = amm.RAYDIUM_FEE_NUMERATOR
    fee_denominator: int = amm.RAYDIUM_FEE_DENOMINATOR
    kind: Literal["cp"] = "cp"


@dataclass(frozen=True, slots=True)
class DlmmPool:
    """A Meteora DLMM pool: X is the pair's base token, Y its quote token."""

    venue: Venue
    pair: Pair
    book: dlmm.DlmmBook
    slot: int
    kind: Literal["dlmm"] = "dlmm"


PoolState = Annotated[CpPool | DlmmPool, Field(discriminator="kind")]
POOL_STATE: TypeAdapter[CpPool | DlmmPool] = TypeAdapter(PoolState)
"""Validates and serialises pool states; the chain stores them as JSON."""


@dataclass(frozen=True, slots=True)
class Fill:
    """What one swap against one pool did, in raw units of the tokens involved.

    ``fee`` is in the input token; ``price_impact`` is curve-only, as a fraction.
    """

    amount_in: int
    amount_out: int
    fee: int
    price_impact: Decimal
    pool: CpPool | DlmmPool


def fill_exact_in(
    pool: CpPool | DlmmPool, side: Side, amount_raw: int, *, now_s: int | None = None
) -> Fill:
    """Pay exactly ``amount_raw``, with the full detail of the fill."""
    if isinstance(pool, CpPool):
        reserve_in, reserve_out = _cp_reserves(pool, side)
        out, fee = amm.swap_base_in(
            amount_raw,
            reserve_in,
            reserve_out,
            fee_numerator=pool.fee_numerator,
            fee_denominator=pool.fee_denominator,
        )
        impact = amm.price_impact(amount_raw - fee, reserve_in)
        return Fill(
            amount_raw, out, fee, impact, _cp_moved(pool, side, amount_raw, out)
        )
    swap = dlmm.swap_exact_in(
        pool.book, amount_raw, x_to_y=side is Side.SELL, now_s=_now(pool, now_s)
    )
    return _dlmm_fill(pool, swap, side)


def fill_exact_out(
    pool: CpPool | DlmmPool, side: Side, amount_raw: int, *, now_s: int | None = None
) -> Fill:
    """Receive exactly ``amount_raw``, with the full detail of the fill."""
    if isinstance(pool, CpPool):
        reserve_in, reserve_out = _cp_reserves(pool, side)
        paid, fee = amm.swap_base_out(
            amount_raw,
            reserve_in,
            reserve_out,
            fee_numerator=pool.fee_numerator,
            fee_denominator=pool.fee_denominator,
        )
        impact = amm.price_impact(paid - fee, reserve_in)
        return Fill(
            paid, amount_raw, fee, impact, _cp_moved(pool, side, paid, amount_raw)
        )
    swap = dlmm.swap_exact_out(
        pool.book, amount_raw, x_to_y=side is Side.SELL, now_s=_now(pool, now_s)
    )
    return _dlmm_fill(pool, swap, side)


def capacity(
    pool: CpPool | DlmmPool, side: Side, *, exact_in: bool, now_s: int | None = None
) -> int | None:
    """The largest amount a swap can fix in this direction; ``None`` if unbounded.

    A constant-product pool absorbs any input but can pay out less than its reserve.
    """
    if isinstance(pool, CpPool):
        return None if exact_in else _cp_reserves(pool, side)[1] - 1
    x_to_y = side is Side.SELL
    if exact_in:
        return dlmm.max_amount_in(pool.book, x_to_y=x_to_y, now_s=_now(pool, now_s))
    return dlmm.available_out(pool.book, x_to_y=x_to_y)


def raw_mid_price(pool: CpPool | DlmmPool) -> Decimal:
    """Quote raw units per base raw unit at the pool's current state."""
    if isinstance(pool, CpPool):
        return Decimal(pool.quote_reserve) / Decimal(pool.base_reserve)
    return dlmm.bin_price(pool.book.active_id, pool.book.params.bin_step)


def _now(pool: DlmmPool, now_s: int | None) -> int:
    return pool.book.volatility.last_update_s if now_s is None else now_s


def _cp_reserves(pool: CpPool, side: Side) -> tuple[int, int]:
    if side is Side.SELL:
        return pool.base_reserve, pool.quote_reserve
    return pool.quote_reserve, pool.base_reserve


def _cp_moved(pool: CpPool, side: Side, paid: int, received: int) -> CpPool:
    # The whole input, fee included, stays in the vault: that is what grows k.
    if side is Side.SELL:
        return replace(
            pool,
            base_reserve=pool.base_reserve + paid,
            quote_reserve=pool.quote_reserve - received,
        )
    return replace(
        pool,
        base_reserve=pool.base_reserve - received,
        quote_reserve=pool.quote_reserve + paid,
    )


def _dlmm_fill(pool: DlmmPool, swap: dlmm.DlmmSwap, side: Side) -> Fill:
    impact = dlmm.price_impact(swap, x_to_y=side is Side.SELL)
    moved = replace(pool, book=swap.book)
    return Fill(swap.amount_in, swap.amount_out, swap.fee, impact, moved)
