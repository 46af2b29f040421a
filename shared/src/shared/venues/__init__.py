"""Where the router gets pool state: the venue port and the simulated venues."""

from shared.venues.port import (
    PoolRead,
    PoolSource,
    QuoteUnavailableError,
    VenueClient,
)
from shared.venues.quoting import Quoting
from shared.venues.simulated import SimulatedVenue, simulated_quoting, simulated_venues

__all__ = [
    "PoolRead",
    "PoolSource",
    "QuoteUnavailableError",
    "Quoting",
    "SimulatedVenue",
    "VenueClient",
    "simulated_quoting",
    "simulated_venues",
]
