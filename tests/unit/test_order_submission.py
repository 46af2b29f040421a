"""Submitting an order when the store's connection drops during the append.

The commit may have happened before the connection dropped. The client must then
hear about the order that exists, not "nothing is recorded" (which invites a
second order), and when the gateway cannot tell, it must say so and name it.
"""

from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from fastapi import HTTPException

from gateway.admission import Admission, InFlight
from gateway.api import _record_admitted
from gateway.handlers import accepted_order
from shared.domain.envelope import EventEnvelope, NewEvent
from shared.domain.events import OrderStatus
from shared.eventstore.memory import InMemoryEventStore
from shared.eventstore.port import AppendResult

DROPPED = psycopg.OperationalError("server closed the connection unexpectedly")


class CommitsThenDrops(InMemoryEventStore):
    """The append commits; its answer never arrives."""

    async def append(
        self, stream: UUID, events: Sequence[NewEvent], expected_version: int
    ) -> AppendResult:
        await super().append(stream, events, expected_version)
        raise DROPPED


class Unreachable(InMemoryEventStore):
    """Neither the append nor the read that follows gets an answer."""

    async def append(
        self, stream: UUID, events: Sequence[NewEvent], expected_version: int
    ) -> AppendResult:
        raise DROPPED

    async def read_stream(
        self, stream: UUID, after_version: int = 0
    ) -> list[EventEnvelope]:
        raise DROPPED


async def _nothing_in_flight() -> InFlight:
    return InFlight(0, 0, 0.0)


def _order() -> Any:
    return accepted_order(
        order_id=uuid4(),
        token_pair="SOL-USDC",
        side="sell",
        amount=Decimal(1),
        slippage_bps=50,
        client_order_id=None,
    )


async def test_an_append_that_committed_before_its_connection_dropped_is_accepted() -> (
    None
):
    store = CommitsThenDrops()
    order = _order()

    placed = await _record_admitted(
        store, Admission(_nothing_in_flight, limit=0), order, correlation_id=uuid4()
    )

    assert placed.order_id == order.order_id
    assert placed.status is OrderStatus.PENDING
    assert not placed.replayed
    assert len(await store.read_stream(order.order_id)) == 1


async def test_an_append_whose_outcome_cannot_be_learned_names_the_order() -> None:
    order = _order()

    with pytest.raises(HTTPException) as refused:
        await _record_admitted(
            Unreachable(),
            Admission(_nothing_in_flight, limit=0),
            order,
            correlation_id=uuid4(),
        )

    assert refused.value.status_code == 503
    assert str(order.order_id) in refused.value.detail
    assert "may or may not be recorded" in refused.value.detail
    assert refused.value.headers == {"Retry-After": "1"}
