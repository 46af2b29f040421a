"""Placing and reading orders: the gateway's use cases, free of HTTP."""

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID, uuid4, uuid5

from shared.domain.envelope import EventEnvelope, NewEvent, event_id_for
from shared.domain.events import OrderAccepted, OrderStatus, OrderType
from shared.domain.order import OrderState, replay
from shared.eventstore.port import (
    NO_STREAM,
    EventStore,
    UnreadableStreamError,
    WrongExpectedVersionError,
)

# Namespace for order ids derived from a client's idempotency key.
CLIENT_ORDER_NAMESPACE = UUID("6f8f3b8e-3c1e-4f7a-9a51-0c9a8e2d7b11")


class IdempotencyConflictError(Exception):
    """The idempotency key was already used for a different order."""


class RecordedUnreadableError(Exception):
    """The idempotency key's order is recorded, but reading it back failed."""

    def __init__(self, order_id: UUID) -> None:
        super().__init__(f"order {order_id} is recorded but could not be read back")
        self.order_id = order_id


@dataclass(frozen=True, slots=True)
class Placed:
    order_id: UUID
    status: OrderStatus
    replayed: bool
    correlation_id: UUID  # the order's: the first request's, also on a replay
    position: int  # OrderAccepted's global position
    # The request that recorded it (OrderAccepted's causation): a client's retry
    # may repeat the correlation id, never this.
    recorded_by: UUID | None = None


def order_id_for(client_order_id: str | None) -> UUID:
    if client_order_id is None:
        return uuid4()
    return uuid5(CLIENT_ORDER_NAMESPACE, client_order_id)


async def place_order(
    store: EventStore,
    accepted: OrderAccepted,
    *,
    correlation_id: UUID,
    submission_id: UUID | None = None,
) -> Placed:
    """Record ``OrderAccepted``, caused by submission ``submission_id``; a repeated
    idempotency key returns the first order."""
    new_event = NewEvent(
        event_id=event_id_for(accepted.order_id, accepted.type, 0),
        event=accepted,
        correlation_id=correlation_id,
        causation_id=submission_id,
    )
    try:
        appended = await store.append(
            accepted.order_id, [new_event], expected_version=NO_STREAM
        )
    except WrongExpectedVersionError:
        pass
    else:
        if not appended.replayed:
            return Placed(
                accepted.order_id,
                OrderStatus.PENDING,
                replayed=False,
                correlation_id=correlation_id,
                position=appended.first_position,
                recorded_by=submission_id,
            )
    # The key was used before: the first order stands, if it is this order.
    try:
        history = await store.read_stream(accepted.order_id)
    except UnreadableStreamError:
        raise  # recorded, and no retry will read it: an upgraded gateway can
    except Exception as error:
        # Whatever the read says, the append already did: the order is recorded.
        raise RecordedUnreadableError(accepted.order_id) from error
    return as_placed(history, accepted, replayed=True)


def as_placed(
    history: Sequence[EventEnvelope], accepted: OrderAccepted, *, replayed: bool
) -> Placed:
    """The order a non-empty stream records, if it is ``accepted``; else raise
    ``IdempotencyConflictError`` (its key was used for another order)."""
    if history[0].event != accepted:
        raise IdempotencyConflictError(
            f"idempotency key {accepted.client_order_id!r} (clientOrderId or"
            " Idempotency-Key) was already used for another order"
        )
    state = replay(e.event for e in history)
    assert state is not None  # noqa: S101 - the stream has at least OrderAccepted
    return Placed(
        accepted.order_id,
        state.status,
        replayed=replayed,
        correlation_id=history[0].correlation_id,
        position=history[0].global_position,
        recorded_by=history[0].causation_id,
    )


def accepted_order(
    *,
    order_id: UUID,
    token_pair: str,
    side: str,
    amount: object,
    slippage_bps: int,
    client_order_id: str | None,
) -> OrderAccepted:
    return OrderAccepted.model_validate(
        {
            "order_id": order_id,
            "order_type": OrderType.MARKET,
            "token_pair": token_pair,
            "side": side,
            "amount": amount,
            "slippage_bps": slippage_bps,
            "client_order_id": client_order_id,
        }
    )


def fold(history: list[EventEnvelope]) -> OrderState | None:
    return replay(e.event for e in history)
