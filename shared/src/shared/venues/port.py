"""The venue port: read one venue's pool for a pair, as a quote request would."""

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shared.domain.pairs import Pair
from shared.domain.pools import CpPool, DlmmPool
from shared.domain.quotes import Venue


class QuoteUnavailableError(Exception):
    """The venue timed out, rate-limited or refused; nothing was quoted."""


@dataclass(frozen=True, slots=True)
class PoolRead:
    """A venue's pool and when the venue read it (``read_at``, UTC).

    A quote on this pool holds from ``read_at``, not from when the answer was
    used: the state is only as fresh as its read, however long the other venues
    took to answer.
    """

    pool: CpPool | DlmmPool
    read_at: datetime


class VenueClient(Protocol):
    venue: Venue

    async def pool(self, pair: Pair) -> PoolRead: ...


class PoolSource(Protocol):
    """Where simulated venues read pool accounts (the simulated chain)."""

    async def read_pool(self, venue: Venue, pair: Pair) -> CpPool | DlmmPool: ...
