"""The order state machine: evolve and replay events, decide the next events.

Each phase streams as one client status. ``decide_*`` functions are total and pure:
given the state they return the events to append, or nothing when the step was
already taken (a redelivered message), and raise only for impossible requests.
"""

from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from shared.domain.errors import InvalidTransitionError
from shared.domain.events import (
    OrderAccepted,
    OrderEvent,
    OrderFailed,
    OrderStatus,
    RetryScheduled,
    RouteSelected,
    RoutingStarted,
    SwapConfirmed,
    TransactionSubmitted,
)
from shared.domain.quotes import RouteLeg, RoutePlan, VenueQuote
from shared.domain.retry import FailureClass, GiveUp, RetryPolicy


class Phase(StrEnum):
    ACCEPTED = "accepted"
    ROUTING = "routing"
    RETRY_SCHEDULED = "retry_scheduled"
    ROUTED = "routed"
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    FAILED = "failed"


STATUS_OF_PHASE: dict[Phase, OrderStatus] = {
    Phase.ACCEPTED: OrderStatus.PENDING,
    Phase.ROUTING: OrderStatus.ROUTING,
    Phase.RETRY_SCHEDULED: OrderStatus.ROUTING,
    Phase.ROUTED: OrderStatus.BUILDING,
    Phase.SUBMITTED: OrderStatus.SUBMITTED,
    Phase.CONFIRMED: OrderStatus.CONFIRMED,
    Phase.FAILED: OrderStatus.FAILED,
}

# Which event may follow which phase. A failed attempt may happen while routing
# (no quote), once routed (stale route) or once submitted (expired, slippage).
_ALLOWED: dict[Phase, frozenset[str]] = {
    Phase.ACCEPTED: frozenset({"RoutingStarted"}),
    Phase.ROUTING: frozenset({"RouteSelected", "RetryScheduled", "OrderFailed"}),
    Phase.RETRY_SCHEDULED: frozenset(
        {"RouteSelected", "RetryScheduled", "OrderFailed"}
    ),
    Phase.ROUTED: frozenset({"TransactionSubmitted", "RetryScheduled", "OrderFailed"}),
    Phase.SUBMITTED: frozenset({"SwapConfirmed", "RetryScheduled", "OrderFailed"}),
    Phase.CONFIRMED: frozenset(),
    Phase.FAILED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class OrderState:
    """An order folded from its events."""

    spec: OrderAccepted
    version: int
    phase: Phase
    attempt: int = 0
    route: RouteSelected | None = None
    transaction: TransactionSubmitted | None = None
    retry: RetryScheduled | None = None
    confirmation: SwapConfirmed | None = None
    failure: OrderFailed | None = None
    failed_attempts: tuple[RetryScheduled, ...] = ()

    @property
    def order_id(self) -> UUID:
        return self.spec.order_id

    @property
    def status(self) -> OrderStatus:
        return STATUS_OF_PHASE[self.phase]

    @property
    def plan(self) -> RoutePlan | None:
        """The plan the current attempt executes: re-quoted, or as routed."""
        if self.transaction is not None and self.transaction.plan is not None:
            return self.transaction.plan
        return self.route.plan if self.route is not None else None

    @property
    def quotes(self) -> tuple[VenueQuote, ...]:
        """The quotes behind ``plan``: the re-quote's, or the route's."""
        if self.transaction is not None and self.transaction.plan is not None:
            return self.transaction.requoted
        return self.route.quotes if self.route is not None else ()

    @property
    def is_terminal(self) -> bool:
        return self.phase in {Phase.CONFIRMED, Phase.FAILED}


def evolve(state: OrderState | None, event: OrderEvent) -> OrderState:
    """Apply one event; raise ``InvalidTransitionError`` if it cannot follow."""
    if state is None:
        if not isinstance(event, OrderAccepted):
            raise InvalidTransitionError(
                f"a stream must start with OrderAccepted, not {event.type}"
            )
        return OrderState(spec=event, version=1, phase=Phase.ACCEPTED)
    if event.type not in _ALLOWED[state.phase]:
        raise InvalidTransitionError(f"{event.type} cannot follow phase {state.phase}")
    _check_attempt(state, event)
    _check_signature(state, event)
    state = replace(state, version=state.version + 1)
    match event:
        case RoutingStarted():
            return replace(state, phase=Phase.ROUTING, attempt=event.attempt)
        case RouteSelected():
            return replace(state, phase=Phase.ROUTED, route=event, transaction=None)
        case TransactionSubmitted():
            return replace(state, phase=Phase.SUBMITTED, transaction=event)
        case SwapConfirmed():
            return replace(state, phase=Phase.CONFIRMED, confirmation=event)
        case RetryScheduled():
            return replace(
                state,
                phase=Phase.RETRY_SCHEDULED,
                attempt=event.attempt,
                retry=event,
                route=None,
                transaction=None,
                failed_attempts=(*state.failed_attempts, event),
            )
        case OrderFailed():
            return replace(state, phase=Phase.FAILED, failure=event)
    raise InvalidTransitionError(f"unexpected event {event.type}")  # pragma: no cover


def _check_attempt(state: OrderState, event: OrderEvent) -> None:
    match event:
        case RoutingStarted():
            attempt, expected = event.attempt, 1
        case RouteSelected() | TransactionSubmitted() | SwapConfirmed():
            attempt, expected = event.attempt, state.attempt
        case RetryScheduled():
            if event.failed_attempt != state.attempt:
                raise InvalidTransitionError(
                    f"retry of attempt {event.failed_attempt},"
                    f" order is at {state.attempt}"
                )
            attempt, expected = event.attempt, state.attempt + 1
        case OrderFailed():
            attempt, expected = event.failed_attempt, state.attempt
        case _:
            return
    if attempt != expected:
        raise InvalidTransitionError(
            f"{event.type} for attempt {attempt}, expected {expected}"
        )


def _check_signature(state: OrderState, event: OrderEvent) -> None:
    # Once a transaction is sent, only its own outcome may end the attempt: the
    # signature is the one thing that can land.
    if state.phase is not Phase.SUBMITTED or state.transaction is None:
        return
    match event:
        case SwapConfirmed():
            claimed: str | None = event.tx_hash
        case RetryScheduled() | OrderFailed():
            claimed = event.signature
        case _:
            return
    if claimed != state.transaction.signature:
        raise InvalidTransitionError(
            f"{event.type} names {claimed}, the attempt sent"
            f" {state.transaction.signature}"
        )


def replay(events: Iterable[OrderEvent]) -> OrderState | None:
    """Fold a stream from its first event."""
    state: OrderState | None = None
    for event in events:
        state = evolve(state, event)
    return state


# --- decisions ----------------------------------------------------------------


def decide_start_routing(state: OrderState) -> list[OrderEvent]:
    if state.phase is not Phase.ACCEPTED:
        return []
    return [RoutingStarted(attempt=1)]


def awaiting_route(state: OrderState, attempt: int) -> bool:
    """Whether ``attempt`` of this order still needs a route."""
    return state.attempt == attempt and state.phase in {
        Phase.ROUTING,
        Phase.RETRY_SCHEDULED,
    }


def decide_route(
    state: OrderState, *, attempt: int, quotes: tuple[VenueQuote, ...], plan: RoutePlan
) -> list[OrderEvent]:
    if not awaiting_route(state, attempt):
        return []
    return [RouteSelected(attempt=attempt, quotes=quotes, plan=plan)]


def decide_submit(
    state: OrderState,
    *,
    attempt: int,
    signature: str,
    blockhash: str,
    last_valid_block_height: int,
    signed_transaction: str,
    requoted: tuple[VenueQuote, ...] = (),
    plan: RoutePlan | None = None,
) -> list[OrderEvent]:
    if state.phase is not Phase.ROUTED or state.attempt != attempt:
        return []
    return [
        TransactionSubmitted(
            attempt=attempt,
            signature=signature,
            blockhash=blockhash,
            last_valid_block_height=last_valid_block_height,
            signed_transaction=signed_transaction,
            requoted=requoted,
            plan=plan,
        )
    ]


def decide_confirm(
    state: OrderState,
    *,
    signature: str,
    slot: int,
    amount_in: Decimal,
    amount_out: Decimal,
    legs: tuple[RouteLeg, ...],
) -> list[OrderEvent]:
    tx = state.transaction
    if state.phase is not Phase.SUBMITTED or tx is None or tx.signature != signature:
        return []
    plan = state.plan
    if plan is None:  # pragma: no cover - a submitted order always has a plan
        raise InvalidTransitionError("submitted order without a route")
    base_amount, quote_amount = _base_and_quote(state, amount_in, amount_out)
    return [
        SwapConfirmed(
            attempt=state.attempt,
            tx_hash=signature,
            slot=slot,
            amount_in=amount_in,
            amount_out=amount_out,
            final_price=quote_amount / base_amount,
            quoted_amount_in=plan.in_amount,
            quoted_amount_out=plan.out_amount,
            legs=legs,
        )
    ]


def _base_and_quote(
    state: OrderState, amount_in: Decimal, amount_out: Decimal
) -> tuple[Decimal, Decimal]:
    # A sell spends the base token; a buy receives it. The price is quote per base.
    if state.spec.side == "sell":
        return amount_in, amount_out
    return amount_out, amount_in


def decide_attempt_failed(
    state: OrderState,
    *,
    attempt: int,
    phase: Phase,
    failure: FailureClass,
    reason: str,
    policy: RetryPolicy,
) -> list[OrderEvent]:
    """Retry the order as its next attempt, or fail it when the policy gives up.

    ``attempt`` and ``phase`` are where the failure was seen. A failure is news
    only about that step: once the order has moved on (another router's route
    was recorded, another executor's transaction was sent), it says nothing about
    the step the order is at, and retrying then would sign a second swap while
    the first may still land.
    """
    if state.is_terminal or state.attempt != attempt or state.phase is not phase:
        return []
    if state.phase is Phase.ACCEPTED:
        raise InvalidTransitionError("an order fails only once an attempt has started")
    signature = state.transaction.signature if state.transaction else None
    step = policy.after_failure(
        order_key=str(state.order_id), failed_attempt=attempt, failure=failure
    )
    if isinstance(step, GiveUp):
        return [
            OrderFailed(
                failed_attempt=attempt,
                failure=failure,
                reason=f"{reason} ({step.reason})",
                signature=signature,
            )
        ]
    return [
        RetryScheduled(
            attempt=step.attempt,
            failed_attempt=attempt,
            failure=failure,
            reason=reason,
            delay_ms=step.delay_ms,
            signature=signature,
        )
    ]
