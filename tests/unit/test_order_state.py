"""The order state machine: every allowed and refused transition."""

from decimal import Decimal

import pytest

from shared.domain.errors import InvalidTransitionError
from shared.domain.events import (
    STATUS_OF_EVENT,
    OrderEvent,
    OrderFailed,
    OrderStatus,
    RoutingStarted,
    SwapConfirmed,
)
from shared.domain.order import (
    Phase,
    decide_attempt_failed,
    decide_confirm,
    decide_route,
    decide_start_routing,
    decide_submit,
    replay,
)
from shared.domain.retry import FailureClass, RetryPolicy
from tests.unit.order_events import (
    accepted,
    confirmed,
    happy_path,
    plan,
    quote,
    retry,
    routed,
    submitted,
)

POLICY = RetryPolicy(max_attempts=3)


def test_the_happy_path_streams_each_status_once() -> None:
    """pending → routing → building → submitted → confirmed, one event each."""
    events = happy_path()

    state = replay(events)

    assert [STATUS_OF_EVENT[e.type] for e in events] == [
        OrderStatus.PENDING,
        OrderStatus.ROUTING,
        OrderStatus.BUILDING,
        OrderStatus.SUBMITTED,
        OrderStatus.CONFIRMED,
    ]
    assert state is not None
    assert state.status is OrderStatus.CONFIRMED
    assert state.version == 5
    assert state.is_terminal


def test_a_retry_goes_back_through_routing_with_the_next_attempt() -> None:
    """After a failed attempt the order is routing again, as attempt 2."""
    state = replay(
        [accepted(), RoutingStarted(attempt=1), routed(), submitted(), retry(2)]
    )

    assert state is not None
    assert state.status is OrderStatus.ROUTING
    assert state.phase is Phase.RETRY_SCHEDULED
    assert state.attempt == 2
    assert state.transaction is None


def test_a_retried_order_can_still_confirm() -> None:
    """Attempt 2 is routed, submitted and confirmed like the first."""
    state = replay(
        [
            accepted(),
            RoutingStarted(attempt=1),
            routed(),
            submitted(),
            retry(2),
            routed(2),
            submitted(2),
            confirmed(2),
        ]
    )

    assert state is not None
    assert state.status is OrderStatus.CONFIRMED
    assert len(state.failed_attempts) == 1


REFUSED = [
    ("stream must start with OrderAccepted", [RoutingStarted(attempt=1)]),
    ("accepted twice", [accepted(), accepted()]),
    ("route before routing", [accepted(), routed()]),
    ("submit before route", [accepted(), RoutingStarted(attempt=1), submitted()]),
    (
        "confirm before submit",
        [accepted(), RoutingStarted(attempt=1), routed(), confirmed()],
    ),
    ("route for another attempt", [accepted(), RoutingStarted(attempt=1), routed(2)]),
    ("retry skipping an attempt", [accepted(), RoutingStarted(attempt=1), retry(3)]),
    ("anything after confirmed", [*happy_path(), retry(2)]),
    (
        "routing started twice",
        [accepted(), RoutingStarted(attempt=1), RoutingStarted(attempt=1)],
    ),
    (
        "failed before any attempt",
        [
            accepted(),
            OrderFailed(
                failed_attempt=0, failure=FailureClass.SLIPPAGE_EXCEEDED, reason="x"
            ),
        ],
    ),
]


@pytest.mark.parametrize(("case", "events"), REFUSED, ids=[c for c, _ in REFUSED])
def test_refused_transitions_raise(case: str, events: list[OrderEvent]) -> None:
    """An event that cannot follow the current state is refused."""
    with pytest.raises(InvalidTransitionError):
        replay(events)


def test_deciding_a_step_already_taken_decides_nothing() -> None:
    """A redelivered trigger is a no-op: each decide returns [] once done."""
    state = replay(happy_path())
    assert state is not None

    assert decide_start_routing(state) == []
    assert decide_route(state, attempt=1, quotes=(quote(),), plan=plan()) == []
    assert (
        decide_submit(
            state,
            attempt=1,
            signature="s",
            blockhash="b",
            last_valid_block_height=1,
            signed_transaction="",
        )
        == []
    )
    assert (
        decide_confirm(
            state,
            signature="sig1",
            slot=1,
            amount_in=Decimal(1),
            amount_out=Decimal(1),
            legs=(),
        )
        == []
    )
    assert (
        decide_attempt_failed(
            state,
            attempt=1,
            phase=state.phase,
            failure=FailureClass.NETWORK_ERROR,
            reason="x",
            policy=POLICY,
        )
        == []
    )


def test_confirmation_computes_the_price_from_what_moved() -> None:
    """finalPrice is quote per base from the realised amounts, for sells and buys."""
    sell = replay([accepted("sell"), RoutingStarted(attempt=1), routed(), submitted()])
    buy = replay([accepted("buy"), RoutingStarted(attempt=1), routed(), submitted()])
    assert sell is not None
    assert buy is not None

    [sold] = decide_confirm(
        sell,
        signature="sig1",
        slot=9,
        amount_in=Decimal(10),
        amount_out=Decimal(1600),
        legs=plan().legs,
    )
    [bought] = decide_confirm(
        buy,
        signature="sig1",
        slot=9,
        amount_in=Decimal(1600),
        amount_out=Decimal(10),
        legs=plan().legs,
    )

    assert isinstance(sold, SwapConfirmed)
    assert isinstance(bought, SwapConfirmed)
    assert sold.final_price == Decimal(160)
    assert bought.final_price == Decimal(160)


def test_confirmation_of_another_signature_is_ignored() -> None:
    """Only the recorded signature can confirm the attempt."""
    state = replay([accepted(), RoutingStarted(attempt=1), routed(), submitted()])
    assert state is not None

    assert (
        decide_confirm(
            state,
            signature="other",
            slot=1,
            amount_in=Decimal(1),
            amount_out=Decimal(1),
            legs=(),
        )
        == []
    )


def test_failures_are_retried_until_the_last_attempt_then_fail_with_the_reason() -> (
    None
):
    """Attempts 1 and 2 are retried; attempt 3 ends the order as failed."""
    events: list[OrderEvent] = [accepted(), RoutingStarted(attempt=1)]
    for attempt in (1, 2, 3):
        events += [routed(attempt), submitted(attempt)]
        state = replay(events)
        assert state is not None
        decided = decide_attempt_failed(
            state,
            attempt=attempt,
            phase=Phase.SUBMITTED,
            failure=FailureClass.SLIPPAGE_EXCEEDED,
            reason="pool moved",
            policy=POLICY,
        )
        events += decided

    final = replay(events)
    assert final is not None
    assert final.status is OrderStatus.FAILED
    assert final.failure is not None
    assert final.failure.failed_attempt == 3
    assert "pool moved" in final.failure.reason
    assert final.failure.signature == "sig3"
    assert [type(e).__name__ for e in events].count("RetryScheduled") == 2


def test_a_terminal_failure_class_is_not_retried() -> None:
    """Insufficient liquidity fails the order at once."""
    state = replay([accepted(), RoutingStarted(attempt=1)])
    assert state is not None

    [event] = decide_attempt_failed(
        state,
        attempt=1,
        phase=Phase.ROUTING,
        failure=FailureClass.INSUFFICIENT_LIQUIDITY,
        reason="pool too thin",
        policy=POLICY,
    )

    assert isinstance(event, OrderFailed)


def test_a_requoted_plan_is_the_one_confirmed_against() -> None:
    """When the executor re-quoted, quoted amounts come from the fresh plan."""
    fresh = plan().model_copy(update={"out_amount": Decimal(1625)})
    state = replay(
        [
            accepted(),
            RoutingStarted(attempt=1),
            routed(),
            submitted().model_copy(update={"plan": fresh}),
        ]
    )
    assert state is not None

    [event] = decide_confirm(
        state,
        signature="sig1",
        slot=4,
        amount_in=Decimal(10),
        amount_out=Decimal(1626),
        legs=fresh.legs,
    )

    assert isinstance(event, SwapConfirmed)
    assert event.quoted_amount_out == Decimal(1625)


@pytest.mark.parametrize(
    "seen_in",
    [
        # A router's quote failed while another router's route went through.
        Phase.ROUTING,
        # An executor's build failed while another executor sent its transaction.
        Phase.ROUTED,
    ],
)
def test_a_failure_seen_before_the_order_moved_on_decides_nothing(
    seen_in: Phase,
) -> None:
    """A stale failure must not retry an attempt whose transaction may still land."""
    state = replay([accepted(), RoutingStarted(attempt=1), routed(), submitted()])
    assert state is not None
    assert state.phase is Phase.SUBMITTED

    decided = decide_attempt_failed(
        state,
        attempt=1,
        phase=seen_in,
        failure=FailureClass.NETWORK_ERROR,
        reason="quote timed out",
        policy=POLICY,
    )

    assert decided == []


def test_only_the_sent_transaction_can_end_a_submitted_attempt() -> None:
    """A confirmation or failure naming another signature cannot follow the send."""
    sent: list[OrderEvent] = [
        accepted(),
        RoutingStarted(attempt=1),
        routed(),
        submitted(),
    ]
    other = confirmed().model_copy(update={"tx_hash": "someone-else"})
    stale_retry = retry(2).model_copy(update={"signature": None})

    with pytest.raises(InvalidTransitionError, match="someone-else"):
        replay([*sent, other])
    with pytest.raises(InvalidTransitionError, match="names None"):
        replay([*sent, stale_retry])
    state = replay([*sent, confirmed()])
    assert state is not None
    assert state.status is OrderStatus.CONFIRMED
