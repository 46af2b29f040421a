"""The one event envelope: an event plus where and why it was recorded."""

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, Self
from uuid import UUID, uuid5

from pydantic import model_validator

from shared.domain.events import STATUS_OF_EVENT, OrderEvent, OrderStatus
from shared.domain.model import Message


class NewEvent(Message):
    """An event about to be appended to an order's stream."""

    event_id: UUID
    event: OrderEvent
    correlation_id: UUID
    causation_id: UUID | None = None


class EventEnvelope(Message):
    """A recorded event.

    ``stream_version`` counts events in the order's stream from 1; ``global_position``
    counts every event in the store from 1, densely and in commit order.
    """

    event_id: UUID
    order_id: UUID
    stream_version: int
    global_position: int
    type: str
    recorded_at: datetime
    correlation_id: UUID
    causation_id: UUID | None = None
    event: OrderEvent

    @model_validator(mode="after")
    def _type_names_the_event(self) -> Self:
        if self.type != self.event.type:
            raise ValueError(f"envelope type {self.type} != event {self.event.type}")
        return self

    @property
    def status(self) -> OrderStatus:
        return STATUS_OF_EVENT[self.type]


def event_id_for(order_id: UUID, event_type: str, attempt: int) -> UUID:
    """A deterministic id: deciding the same step twice yields the same event id.

    The store treats an append of ids it already holds as an idempotent success, so
    a redelivered message or a racing replica can never record a step twice.
    """
    return uuid5(order_id, f"{event_type}:{attempt}")


class Cause(Protocol):
    """Why a decision is recorded: the event that led to it."""

    @property
    def event_id(self) -> UUID: ...

    @property
    def correlation_id(self) -> UUID: ...


@dataclass(frozen=True, slots=True)
class CauseRef:
    """A cause known by its ids alone, without its recorded envelope at hand."""

    event_id: UUID
    correlation_id: UUID
