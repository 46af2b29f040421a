"""Meteora DLMM bin math in raw integer units: Q64.64 bin prices, base + variable fee.

X is the pair's base token and Y its quote token. Bins below the active bin hold only
Y, bins above only X; selling X walks the active id down, buying X walks it up.
"""

import bisect
import math
from dataclasses import dataclass, replace
from decimal import Decimal, localcontext
from functools import lru_cache

from shared.domain.liquidity import InsufficientLiquidityError

SCALE_OFFSET = 64
ONE_Q64 = 1 << SCALE_OFFSET
FEE_PRECISION = 1_000_000_000
MAX_FEE_RATE = 100_000_000  # 10 %: the program caps base + variable fee here
BASIS_POINT_MAX = 10_000


@dataclass(frozen=True, slots=True)
class Bin:
    id: int
    x: int
    y: int


@dataclass(frozen=True, slots=True)
class FeeParameters:
    """The pool's static fee parameters (defaults: the dlmm-sdk's own test pools)."""

    bin_step: int
    base_factor: int = 10_000
    base_fee_power_factor: int = 0
    variable_fee_control: int = 40_000
    filter_period_s: int = 30
    decay_period_s: int = 600
    reduction_factor: int = 5_000
    max_volatility_accumulator: int = 350_000


@dataclass(frozen=True, slots=True)
class Volatility:
    """The pool's variable fee state, updated by every swap."""

    accumulator: int = 0
    reference: int = 0
    index_reference: int = 0
    last_update_s: int = 0


@dataclass(frozen=True, slots=True)
class DlmmBook:
    """The liquidity book: bins sorted by id, the active id and the volatility state."""

    params: FeeParameters
    active_id: int
    bins: tuple[Bin, ...]
    volatility: Volatility


@dataclass(frozen=True, slots=True)
class DlmmSwap:
    """One walk through the bins: gross input, output, fee, and the resulting book."""

    amount_in: int
    amount_out: int
    fee: int
    net_in: int
    start_price_q64: int
    book: DlmmBook


@lru_cache(maxsize=65_536)
def bin_price_q64(bin_id: int, bin_step: int) -> int:
    """Raw price of X in Y at ``bin_id``: (1 + s/10 000)^id as a Q64.64 integer."""
    with localcontext() as ctx:
        ctx.prec = 60
        price = (Decimal(1) + Decimal(bin_step) / BASIS_POINT_MAX) ** bin_id
        return int((price * ONE_Q64).to_integral_value())


def bin_price(bin_id: int, bin_step: int) -> Decimal:
    """Raw price of X in Y at ``bin_id`` as a Decimal."""
    return Decimal(bin_price_q64(bin_id, bin_step)) / ONE_Q64


def bin_id_for_price(raw_price: float, bin_step: int) -> int:
    """The bin whose price is nearest ``raw_price`` (Y raw units per X raw unit)."""
    return round(math.log(raw_price) / math.log1p(bin_step / BASIS_POINT_MAX))


def base_fee_rate(params: FeeParameters) -> int:
    """Base fee in FEE_PRECISION units: B · s · 10 · 10^p."""
    power: int = 10**params.base_fee_power_factor
    return params.base_factor * params.bin_step * 10 * power


def variable_fee_rate(params: FeeParameters, accumulator: int) -> int:
    """Variable fee in FEE_PRECISION units: ⌈A · (v_a · s)² / 10^11⌉."""
    square = (accumulator * params.bin_step) ** 2
    return -(-params.variable_fee_control * square // 100_000_000_000)


def total_fee_rate(params: FeeParameters, accumulator: int) -> int:
    return min(
        base_fee_rate(params) + variable_fee_rate(params, accumulator), MAX_FEE_RATE
    )


def swap_exact_in(
    book: DlmmBook, amount_in: int, *, x_to_y: bool, now_s: int
) -> DlmmSwap:
    """Spend exactly ``amount_in`` (fee included), walking bins until it is used up."""
    return _walk(book, amount_in, x_to_y=x_to_y, now_s=now_s, exact_in=True)


def swap_exact_out(
    book: DlmmBook, amount_out: int, *, x_to_y: bool, now_s: int
) -> DlmmSwap:
    """Receive exactly ``amount_out``, walking bins until it is filled."""
    return _walk(book, amount_out, x_to_y=x_to_y, now_s=now_s, exact_in=False)


def available_out(book: DlmmBook, *, x_to_y: bool) -> int:
    """All the liquidity a swap in this direction could take out of the book."""
    if x_to_y:
        return sum(b.y for b in book.bins if b.id <= book.active_id)
    return sum(b.x for b in book.bins if b.id >= book.active_id)


def max_amount_in(book: DlmmBook, *, x_to_y: bool, now_s: int) -> int:
    """The largest input the book can absorb in this direction (fees included)."""
    total = available_out(book, x_to_y=x_to_y)
    if total == 0:
        return 0
    return swap_exact_out(book, total, x_to_y=x_to_y, now_s=now_s).amount_in


def price_impact(swap: DlmmSwap, *, x_to_y: bool) -> Decimal:
    """Curve-only impact as a fraction: output vs. the net input at the start price."""
    if swap.net_in <= 0:
        return Decimal(0)
    if x_to_y:
        at_start = Decimal(swap.net_in * swap.start_price_q64) / ONE_Q64
    else:
        at_start = Decimal(swap.net_in * ONE_Q64) / swap.start_price_q64
    return max(Decimal(0), 1 - Decimal(swap.amount_out) / at_start)


def shift_active_bin(book: DlmmBook, target_id: int) -> DlmmBook:
    """Move the active bin to ``target_id`` as an arbitrageur would, fee-free.

    Every bin crossed is converted entirely at its own price (Y to X when the price
    falls, X to Y when it rises), so value in the book is kept up to rounding.
    """
    if target_id == book.active_id:
        return book
    step = book.params.bin_step
    bins = []
    for b in book.bins:
        price = bin_price_q64(b.id, step)
        if target_id < b.id <= book.active_id and b.y:
            bins.append(Bin(b.id, b.x + (b.y << SCALE_OFFSET) // price, 0))
        elif book.active_id <= b.id < target_id and b.x:
            bins.append(Bin(b.id, 0, b.y + (b.x * price >> SCALE_OFFSET)))
        else:
            bins.append(b)
    return replace(book, active_id=target_id, bins=tuple(bins))


def spread_liquidity(
    *,
    params: FeeParameters,
    active_id: int,
    total_x: int,
    total_y: int,
    half_width: int,
    sigma: float,
    now_s: int = 0,
) -> DlmmBook:
    """A book with Gaussian-weighted liquidity over ±``half_width`` bins around mid.

    X sits in the active bin and above, Y in the active bin and below; the active
    bin carries half a weight on each side.
    """
    offsets = range(-half_width, half_width + 1)
    weight = {k: math.exp(-0.5 * (k / sigma) ** 2) for k in offsets}
    x_weight = sum(w for k, w in weight.items() if k > 0) + weight[0] / 2
    y_weight = sum(w for k, w in weight.items() if k < 0) + weight[0] / 2
    bins = []
    for k in offsets:
        x_share = weight[k] if k > 0 else weight[k] / 2 if k == 0 else 0.0
        y_share = weight[k] if k < 0 else weight[k] / 2 if k == 0 else 0.0
        bins.append(
            Bin(
                active_id + k,
                int(total_x * x_share / x_weight),
                int(total_y * y_share / y_weight),
            )
        )
    volatility = Volatility(index_reference=active_id, last_update_s=now_s)
    return DlmmBook(params, active_id, tuple(bins), volatility)


def _update_references(book: DlmmBook, now_s: int) -> Volatility:
    vol, params = book.volatility, book.params
    elapsed = now_s - vol.last_update_s
    if elapsed < params.filter_period_s:
        return vol
    reference = (
        vol.accumulator * params.reduction_factor // BASIS_POINT_MAX
        if elapsed < params.decay_period_s
        else 0
    )
    return replace(vol, reference=reference, index_reference=book.active_id)


def _walk(
    book: DlmmBook, amount: int, *, x_to_y: bool, now_s: int, exact_in: bool
) -> DlmmSwap:
    if amount < 0:
        raise ValueError("amount must be non-negative")
    params = book.params
    vol = _update_references(book, now_s)
    bins = list(book.bins)
    # Bins are sorted by id: walk down from the active bin (X in, Y out) or up.
    if x_to_y:
        walk: range = range(
            bisect.bisect_right(bins, book.active_id, key=_bin_id) - 1, -1, -1
        )
    else:
        walk = range(bisect.bisect_left(bins, book.active_id, key=_bin_id), len(bins))
    start_price = bin_price_q64(book.active_id, params.bin_step)
    remaining, total_in, total_out, total_fee, total_net = amount, 0, 0, 0, 0
    active, accumulator = book.active_id, vol.accumulator
    for i in walk:
        if remaining == 0:
            break
        b = bins[i]
        k = b.id
        available = b.y if x_to_y else b.x
        if available == 0:
            continue
        active = k
        accumulator = min(
            vol.reference + abs(vol.index_reference - k) * BASIS_POINT_MAX,
            params.max_volatility_accumulator,
        )
        rate = total_fee_rate(params, accumulator)
        price = bin_price_q64(k, params.bin_step)
        if exact_in:
            full_net = _net_in_for(available, price, x_to_y=x_to_y)
            full_fee = -(-full_net * rate // (FEE_PRECISION - rate))
            if remaining >= full_net + full_fee:
                net, fee, out = full_net, full_fee, available
            else:
                fee = -(-remaining * rate // FEE_PRECISION)
                net = remaining - fee
                out = min(_out_for(net, price, x_to_y=x_to_y), available)
            used = net + fee
        else:
            out = min(remaining, available)
            net = _net_in_for(out, price, x_to_y=x_to_y)
            fee = -(-net * rate // (FEE_PRECISION - rate))
            used = out
        remaining -= used
        total_in, total_out = total_in + net + fee, total_out + out
        total_fee, total_net = total_fee + fee, total_net + net
        bins[i] = (
            Bin(k, b.x + net, b.y - out) if x_to_y else Bin(k, b.x - out, b.y + net)
        )
    if remaining > 0:
        raise InsufficientLiquidityError(
            f"bins ran out with {remaining} raw units unfilled"
        )
    vol = replace(vol, accumulator=accumulator, last_update_s=now_s)
    new_book = DlmmBook(params, active, tuple(bins), vol)
    return DlmmSwap(total_in, total_out, total_fee, total_net, start_price, new_book)


def _bin_id(b: Bin) -> int:
    return b.id


def _net_in_for(out: int, price_q64: int, *, x_to_y: bool) -> int:
    """Net input that buys ``out`` at one bin price, rounded up."""
    if x_to_y:
        return -(-(out << SCALE_OFFSET) // price_q64)
    return -(-(out * price_q64) >> SCALE_OFFSET)


def _out_for(net_in: int, price_q64: int, *, x_to_y: bool) -> int:
    """Output for ``net_in`` at one bin price, rounded down."""
    if x_to_y:
        return net_in * price_q64 >> SCALE_OFFSET
    return (net_in << SCALE_OFFSET) // price_q64
