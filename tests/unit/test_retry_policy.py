"""The retry policy: exponential back-off with bounded, deterministic jitter."""

import pytest

from shared.domain.retry import (
    RETRYABLE,
    FailureClass,
    GiveUp,
    RetryAfter,
    RetryPolicy,
    RpcBackoff,
)


def test_delays_grow_exponentially_within_the_jitter_band() -> None:
    """Attempt n waits about base * 2^(n-1), never outside ±jitter."""
    policy = RetryPolicy(
        base_delay_ms=500, multiplier=2, jitter=0.2, max_delay_ms=60_000
    )

    for failed_attempt, nominal in ((1, 500), (2, 1000), (3, 2000), (4, 4000)):
        for order in range(50):
            delay = policy.delay_ms(
                order_key=f"o{order}", failed_attempt=failed_attempt
            )
            assert nominal * 0.8 <= delay <= nominal * 1.2


def test_delays_are_capped() -> None:
    """No back-off exceeds the cap plus its jitter."""
    policy = RetryPolicy(base_delay_ms=500, max_delay_ms=1000, jitter=0.2)

    assert policy.delay_ms(order_key="o", failed_attempt=10) <= 1200


def test_the_same_failure_always_gets_the_same_delay() -> None:
    """Jitter comes from the order and attempt, so a redelivery decides the same."""
    policy = RetryPolicy()

    assert policy.delay_ms(order_key="a", failed_attempt=1) == policy.delay_ms(
        order_key="a", failed_attempt=1
    )


def test_jitter_spreads_orders_apart() -> None:
    """Different orders get different delays, so retries do not stampede."""
    policy = RetryPolicy()

    delays = {policy.delay_ms(order_key=f"o{i}", failed_attempt=1) for i in range(20)}

    assert len(delays) > 10


@pytest.mark.parametrize("failure", sorted(RETRYABLE))
def test_retryable_failures_are_retried_until_the_last_attempt(
    failure: FailureClass,
) -> None:
    """Attempts 1 and 2 are retried; the third gives up."""
    policy = RetryPolicy(max_attempts=3)

    first = policy.after_failure(order_key="o", failed_attempt=1, failure=failure)
    second = policy.after_failure(order_key="o", failed_attempt=2, failure=failure)
    third = policy.after_failure(order_key="o", failed_attempt=3, failure=failure)

    assert isinstance(first, RetryAfter)
    assert first.attempt == 2
    assert isinstance(second, RetryAfter)
    assert second.attempt == 3
    assert isinstance(third, GiveUp)


def test_insufficient_liquidity_is_not_retried() -> None:
    """A size no venue can fill fails at once."""
    step = RetryPolicy().after_failure(
        order_key="o", failed_attempt=1, failure=FailureClass.INSUFFICIENT_LIQUIDITY
    )

    assert isinstance(step, GiveUp)


def test_a_failed_rpc_call_is_retried_at_once_then_backs_off_to_the_poll() -> None:
    backoff = RpcBackoff(first_s=0.02, max_s=0.2)

    waits = [backoff.delay_s(failures) for failures in range(1, 7)]

    assert waits == pytest.approx([0.02, 0.04, 0.08, 0.16, 0.2, 0.2])
    assert backoff.delay_s(0) == 0
