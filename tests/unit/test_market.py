"""The simulated market: replayable prices, fee-band majors, 2-5 % divergent pairs."""

import itertools
from dataclasses import replace

from shared.domain.genesis import genesis_pools, genesis_raw_price
from shared.domain.market import Market, drift_pool, fair_factor, reference_factor
from shared.domain.pairs import Side
from shared.domain.pools import CpPool, fill_exact_in, raw_mid_price
from shared.domain.quotes import Venue

MARKET = Market(seed=7, slot_ms=400)
TIMES = range(0, 6 * 3_600_000, 97_000)  # six hours, off any grid


def _gap(pair: str, at_ms: int) -> float:
    raydium = fair_factor(MARKET, pair, Venue.RAYDIUM, at_ms)
    meteora = fair_factor(MARKET, pair, Venue.METEORA, at_ms)
    return max(raydium, meteora) / min(raydium, meteora) - 1


def test_same_seed_and_time_give_the_same_price() -> None:
    """Prices are a pure function of (seed, time): a replay sees the same market."""
    again = Market(seed=7, slot_ms=400)

    assert [fair_factor(MARKET, "SOL-USDC", Venue.METEORA, t) for t in TIMES] == [
        fair_factor(again, "SOL-USDC", Venue.METEORA, t) for t in TIMES
    ]


def test_another_seed_gives_another_market() -> None:
    """The seed matters."""
    other = Market(seed=8, slot_ms=400)

    assert reference_factor(MARKET, "SOL-USDC", 3_600_000) != reference_factor(
        other, "SOL-USDC", 3_600_000
    )


def test_reference_is_continuous_between_grid_points() -> None:
    """Neighbouring milliseconds differ by far less than a basis point."""
    steps = [
        abs(
            reference_factor(MARKET, "SOL-USDC", t + 1)
            / reference_factor(MARKET, "SOL-USDC", t)
            - 1
        )
        for t in range(0, 10_000, 37)
    ]

    assert max(steps) < 1e-5


def test_major_venues_stay_inside_the_fee_band() -> None:
    """SOL-USDC venues differ by less than fee1 + fee2 (0.29 %), as arbitrage keeps."""
    assert max(_gap("SOL-USDC", t) for t in TIMES) < 0.0029


def test_divergent_pairs_differ_by_the_configured_spread() -> None:
    """Long-tail venues sit venue_spread_min..max (2-5 %) apart at all times."""
    gaps = [
        _gap(pair, t) for pair, t in itertools.product(("BONK-SOL", "MOON-SOL"), TIMES)
    ]

    assert min(gaps) >= 0.02 - 1e-9
    assert max(gaps) <= 0.05 + 1e-9


def test_divergence_is_a_setting() -> None:
    """Declaring a major divergent gives it the 2-5 % gap too."""
    wide = replace(MARKET, divergent_pairs=frozenset({"SOL-USDC"}))

    raydium = fair_factor(wide, "SOL-USDC", Venue.RAYDIUM, 60_000)
    meteora = fair_factor(wide, "SOL-USDC", Venue.METEORA, 60_000)
    assert 0.02 <= max(raydium, meteora) / min(raydium, meteora) - 1 <= 0.05


def test_untouched_pool_tracks_its_fair_price() -> None:
    """Without swaps a pool's price is its venue's fair price at that time."""
    pool = next(p for p in genesis_pools(MARKET) if isinstance(p, CpPool))

    later = drift_pool(
        pool, MARKET, genesis_price=genesis_raw_price(pool.pair), slot=9_000
    )

    fair = float(genesis_raw_price(pool.pair)) * fair_factor(
        MARKET, pool.pair.symbol, pool.venue, 9_000 * 400
    )
    assert abs(float(raw_mid_price(later)) / fair - 1) < 1e-9
    assert isinstance(later, CpPool)
    assert (
        later.base_reserve * later.quote_reserve
        <= pool.base_reserve * pool.quote_reserve
    )


def test_arbitrage_pulls_a_swapped_pool_back() -> None:
    """A big sell pushes the price down; a few half-lives later it is nearly back."""
    pool = next(p for p in genesis_pools(MARKET) if isinstance(p, CpPool))
    genesis = genesis_raw_price(pool.pair)
    hit = fill_exact_in(pool, Side.SELL, 2_000 * 10**9).pool
    fair_then = float(genesis) * fair_factor(MARKET, pool.pair.symbol, pool.venue, 0)
    pushed = float(raw_mid_price(hit)) / fair_then - 1

    later = drift_pool(
        hit, MARKET, genesis_price=genesis, slot=100
    )  # 40 s = 8 half-lives
    fair_now = float(genesis) * fair_factor(
        MARKET, pool.pair.symbol, pool.venue, 40_000
    )
    left = float(raw_mid_price(later)) / fair_now - 1

    assert pushed < -0.05
    assert abs(left) < abs(pushed) / 100
