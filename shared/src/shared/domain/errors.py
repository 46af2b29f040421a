"""Errors the domain raises for requests that can never be valid."""


class DomainError(Exception):
    """Base of the domain's errors."""


class InvalidTransitionError(DomainError):
    """An event does not follow from the order's current state."""
