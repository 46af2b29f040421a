"""Builders of one order's events for unit tests: a SOL-USDC sell routed to Meteora.

``recorded`` wraps an event as the store would hand it back, at a global position;
``route_a_new_order`` records one, routed, in a store.
"""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from shared.domain.envelope import CauseRef, EventEnvelope, NewEvent
from shared.domain.events import (
    OrderAccepted,
    OrderEvent,
    OrderFailed,
    RetryScheduled,
    RouteSelected,
    RoutingStarted,
    SwapConfirmed,
    TransactionSubmitted,
)
from shared.domain.order import decide_route, decide_start_routing
from shared.domain.quotes import RouteLeg, RoutePlan, Venue, VenueQuote
from shared.domain.retry import FailureClass
from shared.eventstore.memory import InMemoryEventStore
from shared.eventstore.orders import Orders
from shared.eventstore.port import NO_STREAM


def accepted(side: str = "sell") -> OrderAccepted:
    return OrderAccepted(
        order_id=uuid.uuid4(),
        order_type="market",
        token_pair="SOL-USDC",
        side=side,
        amount=Decimal(10),
        slippage_bps=50,
    )


def plan() -> RoutePlan:
    leg = RouteLeg(
        venue=Venue.METEORA, bps=10_000, in_amount=Decimal(10), out_amount=Decimal(1630)
    )
    return RoutePlan(
        legs=(leg,),
        in_amount=Decimal(10),
        out_amount=Decimal(1630),
        min_amount_out=Decimal("1621.85"),
        max_amount_in=Decimal(10),
        gain_bps_over_best_single=Decimal(0),
        reason="meteora is best",
    )


def quote() -> VenueQuote:
    return VenueQuote(
        venue=Venue.METEORA,
        in_amount=Decimal(10),
        out_amount=Decimal(1630),
        min_amount_out=Decimal("1621.85"),
        max_amount_in=Decimal(10),
        fee=Decimal("0.004"),
        price_impact_pct=Decimal("0.0001"),
        slot=1,
        expires_at=datetime(2030, 1, 1, tzinfo=UTC),
    )


def routed(attempt: int = 1) -> RouteSelected:
    return RouteSelected(attempt=attempt, quotes=(quote(),), plan=plan())


def submitted(attempt: int = 1) -> TransactionSubmitted:
    return TransactionSubmitted(
        attempt=attempt,
        signature=f"sig{attempt}",
        blockhash="bh",
        last_valid_block_height=150,
        signed_transaction="AA==",
    )


def confirmed(attempt: int = 1) -> SwapConfirmed:
    return SwapConfirmed(
        attempt=attempt,
        tx_hash=f"sig{attempt}",
        slot=3,
        amount_in=Decimal(10),
        amount_out=Decimal(1629),
        final_price=Decimal("162.9"),
        quoted_amount_in=Decimal(10),
        quoted_amount_out=Decimal(1630),
        legs=plan().legs,
    )


def retry(attempt: int) -> RetryScheduled:
    """The retry of a submitted attempt, naming the transaction it sent."""
    return RetryScheduled(
        attempt=attempt,
        failed_attempt=attempt - 1,
        failure=FailureClass.SLIPPAGE_EXCEEDED,
        reason="moved",
        delay_ms=500,
        signature=f"sig{attempt - 1}",
    )


def happy_path() -> list[OrderEvent]:
    return [accepted(), RoutingStarted(attempt=1), routed(), submitted(), confirmed()]


def failed_routing_after_a_sent_attempt() -> list[OrderEvent]:
    """Attempt 1 routed and sent, slipped on chain; attempt 2 got no quote."""
    return [
        accepted(),
        RoutingStarted(attempt=1),
        routed(1),
        submitted(1),
        retry(2),
        OrderFailed(
            failed_attempt=2,
            failure=FailureClass.QUOTE_UNAVAILABLE,
            reason="every venue failed to quote",
        ),
    ]


def requoted_then_confirmed() -> list[OrderEvent]:
    """Routed to Meteora; stale by the time it was built, re-quoted to Raydium."""
    raydium = plan().model_copy(
        update={"legs": (plan().legs[0].model_copy(update={"venue": Venue.RAYDIUM}),)}
    )
    return [
        accepted(),
        RoutingStarted(attempt=1),
        routed(1),
        submitted(1).model_copy(update={"plan": raydium}),
        confirmed(1).model_copy(update={"legs": raydium.legs}),
    ]


def recorded(
    position: int,
    order_id: uuid.UUID | None = None,
    event: OrderEvent | None = None,
) -> EventEnvelope:
    """``event`` (``RoutingStarted`` by default) recorded at ``position``, of a new
    order by default."""
    order = order_id or uuid.uuid4()
    event = event or RoutingStarted(attempt=1)
    return EventEnvelope(
        event_id=uuid.uuid4(),
        order_id=order,
        stream_version=1,
        global_position=position,
        type=event.type,
        recorded_at=datetime.now(UTC),
        correlation_id=order,
        event=event,
    )


async def route_a_new_order(
    orders: Orders, store: InMemoryEventStore
) -> tuple[uuid.UUID, CauseRef]:
    """A new order accepted, then routed to Meteora alone, as the executor gets it."""
    spec = accepted()
    order_id = spec.order_id
    await store.append(
        order_id,
        [NewEvent(event_id=uuid.uuid4(), event=spec, correlation_id=order_id)],
        NO_STREAM,
    )
    cause = CauseRef(event_id=uuid.uuid4(), correlation_id=order_id)
    await orders.decide(order_id, decide_start_routing, cause=cause)
    await orders.decide(
        order_id,
        lambda s: decide_route(s, attempt=1, quotes=(), plan=plan()),
        cause=cause,
    )
    return order_id, cause
