"""Submitting an order when the store's connection drops during the append.

The commit may have happened before the connection dropped, or happen after it.
The client must then hear about the order that exists, not "nothing is recorded"
(which invites a second order); "not recorded" only once the append's outcome is
final; and when the gateway cannot tell, it must say so and name the order.
"""

import asyncio
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import psycopg
import psycopg_pool
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
SETTLED_S = 0.3  # stands in for the statement timeout and its margin


@pytest.fixture(autouse=True)
def short_settling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.api.APPEND_SETTLED_S", SETTLED_S)


class CommitsThenDrops(InMemoryEventStore):
    """The append commits; its answer never arrives."""

    async def append(
        self, stream: UUID, events: Sequence[NewEvent], expected_version: int
    ) -> AppendResult:
        await super().append(stream, events, expected_version)
        raise DROPPED


class DropsThenCommits(InMemoryEventStore):
    """The connection drops; the server commits the append a moment later."""

    def __init__(self, after_s: float) -> None:
        super().__init__()
        self._after_s = after_s
        self._late: set[asyncio.Task[AppendResult]] = set()

    async def append(
        self, stream: UUID, events: Sequence[NewEvent], expected_version: int
    ) -> AppendResult:
        async def commit() -> AppendResult:
            await asyncio.sleep(self._after_s)
            return await InMemoryEventStore.append(
                self, stream, events, expected_version
            )

        self._late.add(asyncio.create_task(commit()))
        raise DROPPED


class Fails(InMemoryEventStore):
    """The append fails with ``error``; reads answer."""

    def __init__(self, error: psycopg.OperationalError) -> None:
        super().__init__()
        self._error = error

    async def append(
        self, stream: UUID, events: Sequence[NewEvent], expected_version: int
    ) -> AppendResult:
        raise self._error


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


async def test_an_append_committed_after_its_connection_dropped_is_accepted() -> None:
    store = DropsThenCommits(after_s=SETTLED_S / 3)
    order = _order()

    placed = await _record_admitted(
        store, Admission(_nothing_in_flight, limit=0), order, correlation_id=uuid4()
    )

    assert placed.order_id == order.order_id
    assert placed.status is OrderStatus.PENDING
    assert len(await store.read_stream(order.order_id)) == 1


async def test_a_dropped_append_is_not_recorded_only_once_its_outcome_is_final() -> (
    None
):
    order = _order()
    started = time.monotonic()

    with pytest.raises(HTTPException) as refused:
        await _record_admitted(
            Fails(DROPPED),
            Admission(_nothing_in_flight, limit=0),
            order,
            correlation_id=uuid4(),
        )

    assert time.monotonic() - started >= SETTLED_S
    assert refused.value.status_code == 503
    assert str(order.order_id) in refused.value.detail
    assert "it is not recorded: submitting it again is safe" in refused.value.detail


@pytest.mark.parametrize(
    "error",
    [psycopg.errors.LockNotAvailable("lock timeout"), psycopg_pool.PoolTimeout("full")],
    ids=["the server refused it", "no connection to send it on"],
)
async def test_an_append_known_to_have_failed_is_answered_at_once(
    error: psycopg.OperationalError,
) -> None:
    order = _order()
    started = time.monotonic()

    with pytest.raises(HTTPException) as refused:
        await _record_admitted(
            Fails(error),
            Admission(_nothing_in_flight, limit=0),
            order,
            correlation_id=uuid4(),
        )

    assert time.monotonic() - started < SETTLED_S
    assert refused.value.status_code == 503
    assert "it is not recorded" in refused.value.detail


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
