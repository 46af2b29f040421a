"""The simulated market's price process: pure, seeded, evaluable at any time.

Each pair has a reference log price, a Brownian motion built by dyadic Brownian
bridges (so it can be read at any instant in O(log t), without stepping through
history). Each venue's fair price is the reference times a venue deviation:

- *major* profile: an Ornstein-Uhlenbeck deviation per venue, a few bps, so the gap
  stays inside the no-arbitrage fee band (~0.29 %);
- *divergent* profile: the venues sit ``spread_min..spread_max`` apart (2-5 % by
  default), the gap wandering inside that band as an OU process squashed by ``tanh``.
  Which venue is dearer is fixed per (seed, pair).

Pools follow their fair price: a swap displaces a pool from it, and arbitrage pulls
the displacement back with ``reversion_half_life_ms``. The same (seed, time) always
gives the same fair prices, so a test can replay a market exactly.
"""

import functools
import hashlib
import math
from dataclasses import dataclass, replace
from decimal import Decimal, localcontext
from statistics import NormalDist

from shared.domain import dlmm
from shared.domain.pools import CpPool, DlmmPool, raw_mid_price
from shared.domain.quotes import Venue

_BRIDGE_LEVELS = 40  # 2^40 grid steps: centuries at any step we use
_OU_BURN_IN_HALF_LIVES = 12  # residual dependence on the start: 2^-12
_STANDARD_NORMAL = NormalDist()


@dataclass(frozen=True, slots=True)
class PriceProfile:
    """How one pair's prices move (log-price units, per √second)."""

    volatility: float
    step_ms: int
    deviation_std: float
    deviation_half_life_ms: int


MAJOR = PriceProfile(
    volatility=1.3e-4, step_ms=1_000, deviation_std=5e-4, deviation_half_life_ms=1_000
)
LONG_TAIL = PriceProfile(
    volatility=5e-4, step_ms=1_000, deviation_std=1.0, deviation_half_life_ms=60_000
)


@dataclass(frozen=True, slots=True)
class Market:
    """Everything the price process depends on; built by the shell from settings."""

    seed: int
    slot_ms: int
    spread_min: float = 0.02
    spread_max: float = 0.05
    divergent_pairs: frozenset[str] = frozenset({"BONK-SOL", "MOON-SOL"})
    reversion_half_life_ms: int = 5_000

    def profile(self, pair: str) -> PriceProfile:
        return LONG_TAIL if pair in self.divergent_pairs else MAJOR


def reference_factor(market: Market, pair: str, at_ms: int) -> float:
    """The pair's reference price at ``at_ms`` relative to its price at genesis."""
    profile = market.profile(pair)
    scale = profile.volatility * math.sqrt(profile.step_ms / 1_000)
    step, frac = divmod(max(at_ms, 0), profile.step_ms)
    here = _bridge(market.seed, pair, step)
    there = _bridge(market.seed, pair, step + 1) if frac else here
    walk = here + (there - here) * frac / profile.step_ms
    return math.exp(scale * walk)


def venue_deviation(market: Market, pair: str, venue: Venue, at_ms: int) -> float:
    """Log deviation of the venue's fair price from the pair's reference."""
    profile = market.profile(pair)
    if pair not in market.divergent_pairs:
        return profile.deviation_std * _ou(
            market.seed, f"{pair}/{venue}", at_ms, profile
        )
    wander = (1 + math.tanh(_ou(market.seed, f"{pair}/gap", at_ms, profile))) / 2
    gap = market.spread_min + (market.spread_max - market.spread_min) * wander
    dearer = _uniform(market.seed, pair, "dearer") < 0.5  # noqa: PLR2004 - a coin
    sign = 1 if (venue is Venue.RAYDIUM) == dearer else -1
    return sign * math.log1p(gap) / 2


def fair_factor(market: Market, pair: str, venue: Venue, at_ms: int) -> float:
    """The venue's fair price at ``at_ms`` relative to the pair's genesis price."""
    return reference_factor(market, pair, at_ms) * math.exp(
        venue_deviation(market, pair, venue, at_ms)
    )


def drift_pool(
    pool: CpPool | DlmmPool, market: Market, *, genesis_price: Decimal, slot: int
) -> CpPool | DlmmPool:
    """The pool at ``slot``: its displacement from fair price decayed by arbitrage.

    ``genesis_price`` is the pair's raw reference price at genesis. A pool that was
    never swapped sits on its fair price; one that was keeps a shrinking share of the
    displacement the swap caused.
    """
    if slot <= pool.slot:
        return pool
    pair, venue = pool.pair.symbol, pool.venue
    then_ms, now_ms = pool.slot * market.slot_ms, slot * market.slot_ms
    fair_then = float(genesis_price) * fair_factor(market, pair, venue, then_ms)
    fair_now = float(genesis_price) * fair_factor(market, pair, venue, now_ms)
    displacement = math.log(float(raw_mid_price(pool)) / fair_then)
    decay = 0.5 ** ((now_ms - then_ms) / market.reversion_half_life_ms)
    target = fair_now * math.exp(displacement * decay)
    if isinstance(pool, CpPool):
        return _cp_at_price(pool, target, slot)
    book = dlmm.shift_active_bin(
        pool.book, dlmm.bin_id_for_price(target, pool.book.params.bin_step)
    )
    return replace(pool, book=book, slot=slot)


def _cp_at_price(pool: CpPool, raw_price: float, slot: int) -> CpPool:
    # Arbitrage moves a constant-product pool along its curve: x·y stays k.
    with localcontext() as ctx:
        ctx.prec = 50
        k = Decimal(pool.base_reserve) * Decimal(pool.quote_reserve)
        base = int((k / Decimal(raw_price)).sqrt())
    if base <= 0:
        return replace(pool, slot=slot)
    return replace(pool, base_reserve=base, quote_reserve=int(k) // base, slot=slot)


def _ou(seed: int, key: str, at_ms: int, profile: PriceProfile) -> float:
    """A standard (unit-variance) OU process, read at any instant.

    Started from a stationary draw a dozen half-lives back, so neighbouring reads
    agree to 2^-12 while no read needs history older than that.
    """
    step_ms = max(profile.deviation_half_life_ms // 4, 1)
    phi = 0.5 ** (step_ms / profile.deviation_half_life_ms)
    shock = math.sqrt(1 - phi * phi)
    burn_in = 4 * _OU_BURN_IN_HALF_LIVES
    step, frac = divmod(max(at_ms, 0), step_ms)
    start = step - burn_in
    value = _normal(seed, key, "ou-start", start)
    for k in range(start + 1, step + 2):
        previous, value = value, phi * value + shock * _normal(seed, key, "ou", k)
    return previous + (value - previous) * frac / step_ms


# The market is a pure function of (seed, key, time), read many times a second at
# nearby times: neighbouring reads share most of their draws, so both are memoized.
_MEMO = 1 << 16


@functools.lru_cache(maxsize=_MEMO, typed=True)
def _bridge(seed: int, key: str, n: int) -> float:
    """Standard Brownian motion at integer time ``n`` via dyadic Brownian bridges."""
    left, right = 0, 1 << _BRIDGE_LEVELS
    w_left, w_right = 0.0, math.sqrt(right) * _normal(seed, key, "end")
    while right - left > 1:
        middle = (left + right) // 2
        w_middle = (w_left + w_right) / 2 + math.sqrt((right - left) / 4) * _normal(
            seed, key, left, right
        )
        if n < middle:
            right, w_right = middle, w_middle
        else:
            left, w_left = middle, w_middle
    return w_left


def _uniform(seed: int, *keys: object) -> float:
    digest = hashlib.blake2b(repr((seed, *keys)).encode(), digest_size=8).digest()
    return (int.from_bytes(digest) + 0.5) / 2**64


@functools.lru_cache(maxsize=_MEMO, typed=True)
def _normal(seed: int, *keys: object) -> float:
    return _STANDARD_NORMAL.inv_cdf(_uniform(seed, *keys))
