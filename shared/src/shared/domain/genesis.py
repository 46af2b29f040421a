"""The simulated market's starting pools: plausible reserves for every pair and venue.

SOL-USDC follows trading.md §5.1 (the Gateway mock pools); the other pairs are scaled
guesses with the same shape: a thick Raydium v4 pool, a concentrated Meteora book.
"""

from dataclasses import dataclass
from decimal import Decimal

from shared.domain import dlmm
from shared.domain.market import Market, fair_factor
from shared.domain.pairs import SUPPORTED_PAIRS, Pair
from shared.domain.pools import CpPool, DlmmPool
from shared.domain.quotes import Venue


@dataclass(frozen=True, slots=True)
class PairLiquidity:
    """Genesis price (quote per base) and each venue's depth, in token units."""

    price: Decimal
    raydium_base: Decimal
    meteora_base: Decimal
    meteora_quote: Decimal
    bin_step: int
    half_width: int = 60
    sigma: float = 25.0


LIQUIDITY: dict[str, PairLiquidity] = {
    "SOL-USDC": PairLiquidity(
        Decimal("163.5"), Decimal(40_078), Decimal(30_319), Decimal(1_249_000), 4
    ),
    "SOL-USDT": PairLiquidity(
        Decimal("163.4"), Decimal(12_000), Decimal(8_000), Decimal(600_000), 5
    ),
    "JUP-USDC": PairLiquidity(
        Decimal("0.85"), Decimal(3_000_000), Decimal(2_000_000), Decimal(1_500_000), 10
    ),
    "BONK-SOL": PairLiquidity(
        Decimal("0.00000013"),
        Decimal(200_000_000_000),
        Decimal(100_000_000_000),
        Decimal(10_000),
        25,
    ),
    "MOON-SOL": PairLiquidity(
        Decimal("0.0004"),
        Decimal(5_000_000),
        Decimal(3_000_000),
        Decimal(1_000),
        80,
        half_width=40,
        sigma=15.0,
    ),
}


def genesis_raw_price(pair: Pair) -> Decimal:
    """The pair's reference price at genesis in quote raw units per base raw unit."""
    shift = pair.quote.decimals - pair.base.decimals
    return LIQUIDITY[pair.symbol].price.scaleb(shift)


def genesis_pools(market: Market) -> tuple[CpPool | DlmmPool, ...]:
    """Every supported pair on both venues, each at its fair price at slot 0."""
    pools: list[CpPool | DlmmPool] = []
    for symbol, pair in SUPPORTED_PAIRS.items():
        spec = LIQUIDITY[symbol]
        raw = genesis_raw_price(pair)
        ray_price = raw * Decimal(fair_factor(market, symbol, Venue.RAYDIUM, 0))
        base = int(spec.raydium_base.scaleb(pair.base.decimals))
        pools.append(CpPool(Venue.RAYDIUM, pair, base, int(base * ray_price), 0))
        met_price = raw * Decimal(fair_factor(market, symbol, Venue.METEORA, 0))
        params = dlmm.FeeParameters(bin_step=spec.bin_step)
        book = dlmm.spread_liquidity(
            params=params,
            active_id=dlmm.bin_id_for_price(float(met_price), spec.bin_step),
            total_x=int(spec.meteora_base.scaleb(pair.base.decimals)),
            total_y=int(spec.meteora_quote.scaleb(pair.quote.decimals)),
            half_width=spec.half_width,
            sigma=spec.sigma,
        )
        pools.append(DlmmPool(Venue.METEORA, pair, book, 0))
    return tuple(pools)
