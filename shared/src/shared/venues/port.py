"""The venue port: read one venue's pool for a pair, as a quote request would."""

from typing import Protocol

from shared.domain.pairs import Pair
from shared.domain.pools import CpPool, DlmmPool
from shared.domain.quotes import Venue


class QuoteUnavailableError(Exception):
    """The venue timed out, rate-limited or refused; nothing was quoted."""


class VenueClient(Protocol):
    venue: Venue

    async def pool(self, pair: Pair) -> CpPool | DlmmPool: ...


class PoolSource(Protocol):
    """Where simulated venues read pool accounts (the simulated chain)."""

    async def read_pool(self, venue: Venue, pair: Pair) -> CpPool | DlmmPool: ...
