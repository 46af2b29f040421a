"""Where the router gets pool state: the venue port and the simulated venues."""

from shared.venues.port import PoolSource, QuoteUnavailableError, VenueClient
from shared.venues.simulated import SimulatedVenue, simulated_venues

__all__ = [
    "PoolSource",
    "QuoteUnavailableError",
    "SimulatedVenue",
    "VenueClient",
    "simulated_venues",
]
