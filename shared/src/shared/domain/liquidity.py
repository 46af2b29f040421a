"""The one error every venue's math raises when it cannot fill a size."""

from shared.domain.errors import DomainError


class InsufficientLiquidityError(DomainError):
    """No venue (or not this venue) holds enough liquidity to fill the amount."""
