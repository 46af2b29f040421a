"""Submitting an order when the store's connection drops during the append.

The server may have committed the append before the connection dropped, may
commit it later, or never. The gateway sends it again (appends are idempotent),
so the client hears about the one order that exists, recorded once, instead of
"nothing is recorded" (which invites a second order); and when the store stays
unreachable, the 503 says the order may be recorded and names it.
"""

import asyncio
import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

import psycopg
import psycopg_pool
import pytest
from fastapi import HTTPException

from gateway.admission import Admission, InFlight
from gateway.api import _record_admitted
from gateway.handlers import place_order
from shared.domain.envelope import EventEnvelope, NewEvent
from shared.domain.events import OrderStatus
from shared.eventstore.memory import InMemoryEventStore
from shared.eventstore.port import AppendResult
from shared.postgres.connections import UnansweredError
from tests.unit.order_events import accepted

DROPPED = psycopg.OperationalError("server closed the connection unexpectedly")
RETRY_S = 0.3  # stands in for DROPPED_APPEND_RETRY_S


@pytest.fixture(autouse=True)
def short_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.api.DROPPED_APPEND_RETRY_S", RETRY_S)


class AppendDrops(InMemoryEventStore):
    """Append number ``drops`` never gets its answer; it commits ``commit_after_s``
    later (0: before the drop, None: never). The others answer."""

    def __init__(self, commit_after_s: float | None, *, drops: int = 1) -> None:
        super().__init__()
        self._commit_after_s = commit_after_s
        self._drops = drops
        self._late: set[asyncio.Task[AppendResult]] = set()
        self.appends = 0

    async def append(
        self, stream: UUID, events: Sequence[NewEvent], expected_version: int
    ) -> AppendResult:
        self.appends += 1
        if self.appends != self._drops:
            return await super().append(stream, events, expected_version)
        if self._commit_after_s == 0:
            await super().append(stream, events, expected_version)
        elif self._commit_after_s is not None:
            self._late.add(asyncio.create_task(self._commit(stream, events)))
        raise DROPPED

    async def _commit(self, stream: UUID, events: Sequence[NewEvent]) -> AppendResult:
        assert self._commit_after_s is not None
        await asyncio.sleep(self._commit_after_s)
        # The first attempt's own transaction: it finds the retry's (or commits).
        return await InMemoryEventStore.append(self, stream, events, -1)


class Fails(InMemoryEventStore):
    """Every append fails with ``error``, or hangs when it is None."""

    def __init__(self, error: psycopg.OperationalError | None) -> None:
        super().__init__()
        self._error = error
        self.appends = 0

    async def append(
        self, stream: UUID, events: Sequence[NewEvent], expected_version: int
    ) -> AppendResult:
        self.appends += 1
        if self._error is None and self.appends > 1:
            await asyncio.Event().wait()  # a retry that never gets an answer
        raise self._error or DROPPED

    async def read_stream(
        self, stream: UUID, after_version: int = 0
    ) -> list[EventEnvelope]:
        raise DROPPED


async def _nothing_in_flight() -> InFlight:
    return InFlight(0, 0, 0.0)


async def _submit(
    store: InMemoryEventStore, order: Any, correlation_id: UUID | None = None
) -> Any:
    return await _record_admitted(
        store,
        Admission(_nothing_in_flight, limit=0),
        order,
        correlation_id=correlation_id or uuid4(),
    )


@pytest.mark.parametrize(
    "commit_after_s",
    [0, RETRY_S / 10, RETRY_S / 2, None],
    ids=["before the drop", "soon after", "later", "never"],
)
async def test_a_dropped_append_records_the_order_exactly_once(
    commit_after_s: float | None,
) -> None:
    store = AppendDrops(commit_after_s)
    order = accepted()

    placed = await _submit(store, order)
    await asyncio.sleep(RETRY_S)  # let a late commit land, if one is coming

    assert placed.order_id == order.order_id
    assert placed.status is OrderStatus.PENDING
    assert not placed.replayed  # its own first attempt is no replay
    assert len(await store.read_stream(order.order_id)) == 1
    assert store.appends >= 2


@pytest.mark.parametrize(
    "same_correlation", [False, True], ids=["its own request id", "the same one"]
)
async def test_a_dropped_append_another_request_recorded_first_is_a_replay(
    same_correlation: bool,
) -> None:
    """A client's retry with the same clientOrderId (and perhaps the same
    X-Request-ID) won while this one waited."""
    store = AppendDrops(commit_after_s=None, drops=2)
    order = accepted()
    first = uuid4()
    await place_order(store, order, correlation_id=first, submission_id=uuid4())

    placed = await _submit(store, order, first if same_correlation else None)

    assert placed.replayed
    assert len(await store.read_stream(order.order_id)) == 1


@pytest.mark.parametrize(
    "store",
    [Fails(DROPPED), Fails(None)],
    ids=["every retry fails", "a retry never answers"],
)
async def test_a_store_unreachable_for_the_retries_names_the_order(
    store: Fails,
) -> None:
    order = accepted()
    started = time.monotonic()

    with pytest.raises(HTTPException) as refused:
        await _submit(store, order)

    elapsed = time.monotonic() - started
    assert RETRY_S <= elapsed < RETRY_S + 0.5
    assert store.appends >= 2
    assert refused.value.status_code == 503
    assert str(order.order_id) in refused.value.detail
    assert "may or may not be recorded" in refused.value.detail
    assert refused.value.headers == {"Retry-After": "1"}


@pytest.mark.parametrize(
    "error",
    [psycopg.errors.LockNotAvailable("lock timeout"), psycopg_pool.PoolTimeout("full")],
    ids=["the server refused it", "no connection to send it on"],
)
async def test_an_append_known_to_have_failed_is_answered_at_once(
    error: psycopg.OperationalError,
) -> None:
    store = Fails(error)
    order = accepted()

    with pytest.raises(HTTPException) as refused:
        await _submit(store, order)

    assert store.appends == 1
    assert refused.value.status_code == 503
    assert str(order.order_id) in refused.value.detail
    assert "it is not recorded: submitting it again is safe" in refused.value.detail


async def test_a_first_append_left_unanswered_ends_in_a_503_naming_the_order() -> None:
    """A partition gives no error at all: the store drops a connection that
    leaves its statement unanswered (tests/integration/test_dropped_append.py),
    and that counts as a drop like any lost connection."""
    store = Fails(UnansweredError("no answer from the server within 6 s"))
    order = accepted()

    with pytest.raises(HTTPException) as refused:
        await _submit(store, order)

    assert store.appends >= 2
    assert refused.value.status_code == 503
    assert "may or may not be recorded" in refused.value.detail


class ReadBackFails(InMemoryEventStore):
    """Appends answer; reading a stream fails as the server reports."""

    async def read_stream(
        self, stream: UUID, after_version: int = 0
    ) -> list[EventEnvelope]:
        raise psycopg.errors.QueryCanceled("canceling statement due to timeout")


async def test_a_replay_that_cannot_be_read_back_is_said_to_be_recorded() -> None:
    """The repeated clientOrderId's order exists: a 503 saying "not recorded"
    would invite a second order under a new key."""
    store = ReadBackFails()
    order = accepted()
    await place_order(store, order, correlation_id=uuid4(), submission_id=uuid4())

    with pytest.raises(HTTPException) as refused:
        await _submit(store, order)

    assert refused.value.status_code == 503
    assert f"order {order.order_id} is recorded" in refused.value.detail
    assert "not recorded" not in refused.value.detail
