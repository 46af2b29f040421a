"""Simulated Raydium and Meteora endpoints: realistic latency and failures, real pools.

The pool itself comes from the simulated chain, so a quote and a later execution on
the same venue agree unless the pool moved in between (trading.md §5.2).
"""

import asyncio
import math
import random
from datetime import UTC, datetime, timedelta

from shared.domain.pairs import Pair
from shared.domain.quotes import Venue
from shared.settings import Settings
from shared.venues.port import (
    PoolRead,
    PoolSource,
    QuoteUnavailableError,
    VenueClient,
)
from shared.venues.quoting import Quoting

DELAY_SIGMA = 0.6  # log-normal shape: p95 about 2.7 times the median (trading.md §5.3)
MAX_DELAY_FACTOR = 10  # a quote this late would have timed out anyway


class SimulatedVenue:
    """A venue whose quote endpoint waits, sometimes fails, then reads the pool."""

    def __init__(
        self,
        venue: Venue,
        pool_source: PoolSource,
        *,
        delay_ms: float,
        failure_rate: float,
        rng: random.Random,
    ) -> None:
        self.venue = venue
        self._source = pool_source
        self._delay_ms = delay_ms
        self._failure_rate = failure_rate
        self._rng = rng

    async def pool(self, pair: Pair) -> PoolRead:
        await asyncio.sleep(self._delay_s())
        if self._rng.random() < self._failure_rate:
            raise QuoteUnavailableError(
                f"{self.venue}: quote timed out ({pair.symbol})"
            )
        # Taken before the read: the state it returns is at least this recent,
        # so a quote counted from here never outlives what it priced.
        read_at = datetime.now(UTC)
        try:
            pool = await self._source.read_pool(self.venue, pair)
        except LookupError as e:
            raise QuoteUnavailableError(
                f"{self.venue}: no pool for {pair.symbol}"
            ) from e
        return PoolRead(pool, read_at)

    def _delay_s(self) -> float:
        if self._delay_ms <= 0:
            return 0.0
        factor = math.exp(self._rng.gauss(0.0, DELAY_SIGMA))
        return self._delay_ms * min(factor, MAX_DELAY_FACTOR) / 1_000


def simulated_venues(
    settings: Settings, pool_source: PoolSource
) -> dict[Venue, VenueClient]:
    """Both venues, each with its own seeded random stream."""
    return {
        venue: SimulatedVenue(
            venue,
            pool_source,
            delay_ms=settings.quote_delay_ms,
            failure_rate=settings.quote_failure_rate,
            rng=random.Random(f"{settings.market_seed}:{venue}"),
        )
        for venue in Venue
    }


def simulated_quoting(settings: Settings, pool_source: PoolSource) -> Quoting:
    """Quoting on both simulated venues, at the simulated chain's slot length."""
    return Quoting(
        venues=simulated_venues(settings, pool_source),
        timeout=timedelta(milliseconds=settings.quote_timeout_ms),
        validity=timedelta(milliseconds=settings.quote_validity_ms),
        slot_ms=settings.slot_ms,
    )
