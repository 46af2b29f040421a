"""Retry policy: which failures are retried, and after how long."""

import hashlib
from dataclasses import dataclass
from enum import StrEnum


class FailureClass(StrEnum):
    """Why an attempt failed; the class decides whether and how it is retried."""

    QUOTE_UNAVAILABLE = "QUOTE_UNAVAILABLE"  # venue timed out or refused, nothing sent
    NETWORK_ERROR = "NETWORK_ERROR"  # RPC unreachable before the chain had the tx
    SLIPPAGE_EXCEEDED = "SLIPPAGE_EXCEEDED"  # landed, pool moved past the bound
    BLOCKHASH_EXPIRED = "BLOCKHASH_EXPIRED"  # never landed before its blockhash expired
    INSUFFICIENT_LIQUIDITY = "INSUFFICIENT_LIQUIDITY"  # no venue can fill the size
    QUOTE_EXPIRED = "QUOTE_EXPIRED"  # the route went stale before it could be built


RETRYABLE: frozenset[FailureClass] = frozenset(
    {
        FailureClass.QUOTE_UNAVAILABLE,
        FailureClass.NETWORK_ERROR,
        FailureClass.SLIPPAGE_EXCEEDED,
        FailureClass.BLOCKHASH_EXPIRED,
        FailureClass.QUOTE_EXPIRED,
    }
)


@dataclass(frozen=True, slots=True)
class RetryAfter:
    attempt: int
    delay_ms: int


@dataclass(frozen=True, slots=True)
class GiveUp:
    reason: str


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential back-off with jitter, at most ``max_attempts`` attempts per order.

    The jitter is derived from the order id and attempt, so deciding twice for the
    same failure gives the same delay: a redelivered message decides the same thing.
    """

    max_attempts: int = 3
    base_delay_ms: int = 500
    multiplier: float = 2.0
    max_delay_ms: int = 8_000
    jitter: float = 0.2

    def after_failure(
        self, *, order_key: str, failed_attempt: int, failure: FailureClass
    ) -> RetryAfter | GiveUp:
        if failure not in RETRYABLE:
            return GiveUp(reason=f"{failure} is not retryable")
        if failed_attempt >= self.max_attempts:
            return GiveUp(reason=f"{failure} after {failed_attempt} attempts")
        return RetryAfter(
            attempt=failed_attempt + 1,
            delay_ms=self.delay_ms(order_key=order_key, failed_attempt=failed_attempt),
        )

    def delay_ms(self, *, order_key: str, failed_attempt: int) -> int:
        raw = self.base_delay_ms * self.multiplier ** (failed_attempt - 1)
        capped = min(raw, self.max_delay_ms)
        spread = _unit_interval(f"{order_key}:{failed_attempt}") * 2 - 1  # [-1, 1)
        return max(0, round(capped * (1 + self.jitter * spread)))


def _unit_interval(key: str) -> float:
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest) / 2**64


@dataclass(frozen=True, slots=True)
class RpcBackoff:
    """How long to wait before calling an RPC node again after a failed call.

    Distinct from the order's retry policy: a failed call is not a failed attempt.
    Node errors are mostly momentary, so the first retry comes almost at once and
    each further one waits twice as long, up to ``max_s`` (the poll interval: a
    node that stays away is then asked no more often than the chain is polled).
    """

    first_s: float = 0.02
    max_s: float = 0.2

    def delay_s(self, failures: int) -> float:
        """The wait after ``failures`` failed calls in a row (1 for the first)."""
        if failures < 1:
            return 0.0
        return min(self.first_s * 2.0 ** (failures - 1), self.max_s)
