"""Quoting an order across venues: priced as the swap will be, each quote held
from when its pool was read, and a silent venue is no reason to refuse the order
for good."""

import asyncio
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shared.domain.events import OrderAccepted
from shared.domain.genesis import genesis_pools
from shared.domain.market import Market
from shared.domain.pairs import SUPPORTED_PAIRS, Pair, Side
from shared.domain.pools import CpPool, DlmmPool, fill_exact_in
from shared.domain.quotes import Venue
from shared.venues.port import PoolRead, QuoteUnavailableError
from shared.venues.quoting import Quoting
from shared.venues.simulated import SimulatedVenue
from tests.unit.order_events import accepted

SLOT_MS = 50
MOON_SOL = SUPPORTED_PAIRS["MOON-SOL"]
SOL_USDC = SUPPORTED_PAIRS["SOL-USDC"]


class _Venue:
    def __init__(self, venue: Venue, pool: CpPool | DlmmPool | None) -> None:
        self.venue = venue
        self._pool = pool

    async def pool(self, pair: Pair) -> PoolRead:
        if self._pool is None:
            raise QuoteUnavailableError(
                f"{self.venue}: quote timed out ({pair.symbol})"
            )
        return PoolRead(self._pool, datetime.now(UTC))


class _SlowMeteora:
    """The simulated chain's pools, where Meteora's read waits to be let through."""

    def __init__(self) -> None:
        self.raydium_read = asyncio.Event()
        self.meteora_may_read = asyncio.Event()

    async def read_pool(self, venue: Venue, pair: Pair) -> CpPool | DlmmPool:
        if venue is Venue.METEORA:
            await self.meteora_may_read.wait()
        else:
            self.raydium_read.set()
        return _genesis(venue, pair)


def _genesis(venue: Venue, pair: Pair) -> CpPool | DlmmPool:
    (pool,) = [
        p
        for p in genesis_pools(Market(seed=7, slot_ms=SLOT_MS))
        if p.venue is venue and p.pair == pair
    ]
    return pool


def _order(pair: Pair, side: Side, amount: str) -> OrderAccepted:
    return accepted().model_copy(
        update={"token_pair": pair.symbol, "side": side, "amount": Decimal(amount)}
    )


def _quoting(venues: dict[Venue, CpPool | DlmmPool | None]) -> Quoting:
    return Quoting(
        venues={venue: _Venue(venue, pool) for venue, pool in venues.items()},
        timeout=timedelta(seconds=5),
        validity=timedelta(seconds=2),
        slot_ms=SLOT_MS,
    )


def _simulated(
    source: _SlowMeteora, *, timeout: timedelta, validity: timedelta
) -> Quoting:
    return Quoting(
        venues={
            venue: SimulatedVenue(
                venue, source, delay_ms=0, failure_rate=0, rng=random.Random(0)
            )
            for venue in Venue
        },
        timeout=timeout,
        validity=validity,
        slot_ms=SLOT_MS,
    )


async def test_a_dlmm_quote_is_priced_at_the_chains_time_as_its_swap_is() -> None:
    """A big sell walked the book 40 s ago, and its volatility has decayed since.
    Quoted as of that trade, the variable fee still counted it in full: 124 bps
    less out than the swap gives, which biased routing against the venue (where
    the fee rises instead, the swap falls short of the quote's minimum)."""
    walked = fill_exact_in(
        _genesis(Venue.METEORA, MOON_SOL), Side.SELL, 1_000_000 * 10**6, now_s=0
    ).pool
    forty_s_later = replace(walked, slot=40_000 // SLOT_MS)

    _, plan = await _quoting({Venue.METEORA: forty_s_later}).quote_and_plan(
        _order(MOON_SOL, Side.SELL, "100")
    )

    landed = fill_exact_in(forty_s_later, Side.SELL, 100 * 10**6, now_s=40)
    assert plan.out_amount == Decimal(landed.amount_out).scaleb(-9)


async def test_a_quote_expires_from_when_its_pool_was_read_not_the_last_answer() -> (
    None
):
    """Raydium's pool was read at once, Meteora answered only later: Raydium's
    quote expires the validity after its own read, not the validity after
    Meteora answered, which showed an old pool as good for longer."""
    source = _SlowMeteora()
    validity = timedelta(seconds=2)
    quoting = _simulated(source, timeout=timedelta(seconds=5), validity=validity)
    quoted = asyncio.create_task(
        quoting.quote_and_plan(_order(SOL_USDC, Side.SELL, "1"))
    )
    await source.raydium_read.wait()
    raydium_read_by = datetime.now(UTC)
    while datetime.now(UTC) <= raydium_read_by:
        await asyncio.sleep(0)  # Meteora answers strictly later on the clock
    source.meteora_may_read.set()

    quotes, _ = await quoted

    expiry = {quote.venue: quote.expires_at for quote in quotes}
    assert set(expiry) == set(Venue)
    assert expiry[Venue.RAYDIUM] <= raydium_read_by + validity


async def test_a_venue_that_never_answers_is_routed_around_at_its_timeout() -> None:
    """Meteora hangs: the order is routed on Raydium alone once Meteora's time is
    up, and the reason says Meteora timed out, instead of waiting on it forever."""
    quoting = _simulated(
        _SlowMeteora(),
        timeout=timedelta(milliseconds=50),
        validity=timedelta(seconds=2),
    )

    _, plan = await asyncio.wait_for(
        quoting.quote_and_plan(_order(SOL_USDC, Side.SELL, "1")), timeout=5
    )

    assert [leg.venue for leg in plan.legs] == [Venue.RAYDIUM]
    assert plan.reason.endswith("; meteora: quote timed out after 50 ms (SOL-USDC)")


async def test_an_order_only_a_silent_venue_could_fill_is_retried_not_refused() -> None:
    """Meteora cannot fill this buy alone; Raydium, which could have helped, did
    not answer. That is a quote unavailable (retried), not insufficient liquidity
    (final)."""
    quoting = _quoting(
        {
            Venue.RAYDIUM: None,
            Venue.METEORA: _genesis(Venue.METEORA, SOL_USDC),
        }
    )

    with pytest.raises(QuoteUnavailableError, match="raydium: quote timed out"):
        await quoting.quote_and_plan(_order(SOL_USDC, Side.BUY, "45000"))


async def test_a_plan_made_without_a_silent_venue_says_why_it_is_missing() -> None:
    """Raydium did not answer, so Meteora fills alone: the reason says Raydium was
    silent, not that Meteora was the only venue able to fill the order."""
    quoting = _quoting(
        {
            Venue.RAYDIUM: None,
            Venue.METEORA: _genesis(Venue.METEORA, SOL_USDC),
        }
    )

    _, plan = await quoting.quote_and_plan(_order(SOL_USDC, Side.SELL, "1"))

    assert plan.reason == (
        "meteora is the only venue quoted; raydium: quote timed out (SOL-USDC)"
    )


async def test_quoting_with_no_venue_configured_is_no_quote_not_a_crash() -> None:
    """A deployment with every venue switched off gets the failure a post-mortem
    can read (and retry), not a ValueError from waiting on nothing."""
    with pytest.raises(QuoteUnavailableError, match="no venue answered"):
        await _quoting({}).quote_and_plan(
            _order(SUPPORTED_PAIRS["SOL-USDC"], Side.SELL, "1")
        )
