"""The gateway's order list on PostgreSQL: one row per order, whatever the batching.

The projection folds an order's events within a batch into one statement; the row a
user lists must be the same as if every event had been applied on its own.
"""

import asyncio
import dataclasses
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from psycopg.rows import dict_row

from gateway.readmodel import OrdersProjection, OrdersView
from shared.domain.envelope import EventEnvelope, NewEvent
from shared.domain.events import OrderEvent, OrderFailed, RoutingStarted
from shared.domain.retry import FailureClass
from shared.eventstore.checkpoints import Checkpoints
from shared.eventstore.pool import Pool, open_pool
from shared.eventstore.port import RawEvent
from shared.eventstore.postgres import PostgresEventStore
from shared.eventstore.projection import Statement, SupersededError, TableProjection
from tests.integration.plans import plans_as_notices_async
from tests.unit.order_events import (
    accepted,
    confirmed,
    failed_routing_after_a_sent_attempt,
    requoted_then_confirmed,
    retry,
    routed,
    submitted,
)

pytestmark = pytest.mark.integration

_COLUMNS = (
    "status, token_pair, side, amount, client_order_id, venue, final_price,"
    " tx_hash, attempts, failure_reason, version, created_at, updated_at"
)


def _projection(pool: Pool) -> OrdersProjection:
    """A projection with a checkpoint of its own: a running system may share this
    database, and each replay of a history starts from the beginning."""

    class _OwnCheckpoint(OrdersProjection):
        subscriber = f"test:orders_view:{uuid4()}"

    return _OwnCheckpoint(pool=pool, checkpoints=Checkpoints(pool))


def retried_then_confirmed() -> list[OrderEvent]:
    first = accepted()
    return [
        first,
        RoutingStarted(attempt=1),
        routed(1),
        submitted(1),
        retry(2),
        RoutingStarted(attempt=2),
        routed(2),
        submitted(2),
        confirmed(2),
    ]


def failed_after_retries() -> list[OrderEvent]:
    return [
        accepted(),
        RoutingStarted(attempt=1),
        retry(2),
        RoutingStarted(attempt=2),
        OrderFailed(
            failed_attempt=2,
            failure=FailureClass.QUOTE_UNAVAILABLE,
            reason="every venue failed to quote",
        ),
    ]


async def _recorded(
    store: PostgresEventStore, events: Sequence[OrderEvent]
) -> list[EventEnvelope]:
    order_id = uuid4()
    correlation = uuid4()
    await store.append(
        order_id,
        [
            NewEvent(event_id=uuid4(), event=event, correlation_id=correlation)
            for event in events
        ],
        expected_version=0,
    )
    return await store.read_stream(order_id)


async def _row(pool: Pool, order_id: UUID) -> dict[str, Any]:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM gateway.orders_view WHERE order_id = %s",  # noqa: S608 - constant columns
            (order_id,),
        )
        row = await cur.fetchone()
    assert row is not None
    return row


async def _listed_row_by_batches(
    pool: Pool, history: Sequence[EventEnvelope], batches: Sequence[int]
) -> dict[str, Any]:
    """Apply ``history`` in batches of these sizes; the row that results."""
    projection = _projection(pool)
    start = 0
    for size in batches:
        await projection.apply([RawEvent.of(e) for e in history[start : start + size]])
        start += size
    assert start == len(history)
    row = await _row(pool, history[0].order_id)
    async with pool.connection() as conn:
        await conn.execute(
            "DELETE FROM gateway.orders_view WHERE order_id = %s",
            (history[0].order_id,),
        )
    return row


@pytest.mark.parametrize(
    "lifecycle",
    [
        retried_then_confirmed,
        failed_after_retries,
        failed_routing_after_a_sent_attempt,
        requoted_then_confirmed,
    ],
    ids=lambda f: f.__name__,
)
async def test_a_batch_lists_the_order_as_event_by_event_does(
    es_pool: Pool, lifecycle: Any
) -> None:
    store = PostgresEventStore(es_pool)
    history = await _recorded(store, lifecycle())
    count = len(history)

    one_by_one = await _listed_row_by_batches(es_pool, history, [1] * count)
    whole = await _listed_row_by_batches(es_pool, history, [count])
    split = await _listed_row_by_batches(es_pool, history, [3, count - 3])

    assert whole == one_by_one
    assert split == one_by_one


async def test_a_batch_keeps_the_latest_venue_hash_and_the_most_attempts(
    es_pool: Pool,
) -> None:
    store = PostgresEventStore(es_pool)
    history = await _recorded(store, retried_then_confirmed())

    row = await _listed_row_by_batches(es_pool, history, [len(history)])

    assert row["status"] == "confirmed"
    assert row["attempts"] == 2
    assert row["tx_hash"] == "sig2"
    assert row["venue"] == "meteora 100%"
    assert row["final_price"] is not None
    assert row["failure_reason"] is None
    assert row["version"] == len(history)
    assert row["created_at"] == history[0].recorded_at
    assert row["updated_at"] == history[-1].recorded_at


@pytest.mark.parametrize("batches", [[1] * 6, [6], [4, 2]], ids=str)
async def test_a_retry_clears_the_venue_and_hash_of_the_attempt_before(
    es_pool: Pool, batches: list[int]
) -> None:
    """The list shows what the order's last attempt did, as its detail does: this
    one's last attempt never got a quote, so it names no venue and no transaction."""
    store = PostgresEventStore(es_pool)
    history = await _recorded(store, failed_routing_after_a_sent_attempt())

    row = await _listed_row_by_batches(es_pool, history, batches)

    assert row["status"] == "failed"
    assert row["attempts"] == 2
    assert (row["venue"], row["tx_hash"]) == (None, None)
    assert row["failure_reason"] == "every venue failed to quote"


async def test_a_requoted_order_lists_the_venue_it_swapped_on(es_pool: Pool) -> None:
    store = PostgresEventStore(es_pool)
    history = await _recorded(store, requoted_then_confirmed())

    submitted_row = await _listed_row_by_batches(es_pool, history[:4], [4])
    row = await _listed_row_by_batches(es_pool, history, [3, 2])

    assert submitted_row["venue"] == "raydium 100%"
    assert row["venue"] == "raydium 100%"
    assert row["tx_hash"] == "sig1"


async def test_a_failed_order_keeps_its_reason(es_pool: Pool) -> None:
    store = PostgresEventStore(es_pool)
    history = await _recorded(store, failed_after_retries())

    row = await _listed_row_by_batches(es_pool, history, [2, len(history) - 2])

    assert row["status"] == "failed"
    assert row["attempts"] == 2
    assert row["failure_reason"] == "every venue failed to quote"
    assert row["venue"] is None


@pytest.mark.parametrize("newer", ["type", "field"], ids=["a new type", "a new field"])
async def test_an_event_this_release_cannot_read_is_passed_over(
    es_pool: Pool, newer: str
) -> None:
    """A newer release recorded a type this one does not know, or a known type with
    a field it lacks (a rolling upgrade): the order list keeps advancing on the
    events it can read, never stops."""
    store = PostgresEventStore(es_pool)
    history = await _recorded(store, retried_then_confirmed())
    raw = [RawEvent.of(e) for e in history]
    if newer == "type":
        unreadable = dataclasses.replace(
            raw[2],
            event_id=uuid4(),
            type="OrderRepriced",
            envelope_json='{"type": "OrderRepriced", "limitPrice": "163.2"}',
        )
    else:
        envelope = json.loads(raw[2].envelope_json)
        envelope["event"]["routedBy"] = "router-7"
        unreadable = dataclasses.replace(raw[2], envelope_json=json.dumps(envelope))
    with_newer = [*raw[:2], unreadable, *raw[3:]]
    projection = _projection(es_pool)

    await projection.apply(with_newer)

    row = await _row(es_pool, history[0].order_id)
    assert row["status"] == "confirmed"
    assert row["version"] == len(history)
    assert await Checkpoints(es_pool).get(projection.subscriber) == (
        history[-1].global_position
    )


@pytest.mark.parametrize(
    ("events", "status"),
    [
        ([accepted()], "pending"),
        ([accepted(), RoutingStarted(attempt=1), routed(1)], "building"),
    ],
    ids=["waiting for a router", "waiting for an executor"],
)
async def test_admission_sees_how_long_orders_have_waited_for_the_engine(
    es_pool: Pool, events: list[OrderEvent], status: str
) -> None:
    """Four orders waiting show how long they have waited (the fourth-longest
    wait is what admission steers by, so a few stuck orders do not)."""
    store = PostgresEventStore(es_pool)
    projection = _projection(es_pool)
    order_ids: list[UUID] = []
    try:
        for _ in range(4):
            history = await _recorded(store, events)
            order_ids.append(history[0].order_id)
            await projection.apply([RawEvent.of(e) for e in history])
        assert (await _row(es_pool, order_ids[0]))["status"] == status

        await asyncio.sleep(0.5)
        counted = await OrdersView(es_pool).count_in_flight()
        assert counted.orders >= 4
        assert counted.engine_wait_s >= 0.5
    finally:
        async with es_pool.connection() as conn:
            await conn.execute(
                "DELETE FROM gateway.orders_view WHERE order_id = ANY(%s)",
                (order_ids,),
            )


async def test_stalled_orders_are_the_old_in_flight_rows_the_log_has_not_passed(
    es_pool: Pool,
) -> None:
    """Old and in flight: stalled. Fresh, terminal, or behind the log (the read
    model has not caught up): not."""
    store = PostgresEventStore(es_pool)
    projection = _projection(es_pool)
    building: list[OrderEvent] = [accepted(), RoutingStarted(attempt=1), routed(1)]
    cases: dict[str, tuple[list[OrderEvent], int, bool]] = {
        "old": (building, len(building), True),
        "fresh": (building, len(building), False),
        "terminal": ([*building, submitted(1), confirmed(1)], 5, True),
        "behind the log": (building, 2, True),
    }
    order_ids: dict[str, UUID] = {}
    try:
        for name, (events, projected, aged) in cases.items():
            history = await _recorded(store, events)
            order_ids[name] = history[0].order_id
            await projection.apply([RawEvent.of(e) for e in history[:projected]])
            if aged:
                async with es_pool.connection() as conn:
                    await conn.execute(
                        "UPDATE gateway.orders_view"
                        " SET updated_at = updated_at - interval '1 hour'"
                        " WHERE order_id = %s",
                        (order_ids[name],),
                    )

        found = await OrdersView(es_pool).stalled(60.0)
    finally:
        async with es_pool.connection() as conn:
            await conn.execute(
                "DELETE FROM gateway.orders_view WHERE order_id = ANY(%s)",
                (list(order_ids.values()),),
            )

    ours = {
        (stalled.status.value, name)
        for stalled in found
        for name, order_id in order_ids.items()
        if order_id in stalled.oldest
    }
    assert ours == {("building", "old")}
    (building_stalled,) = [s for s in found if s.status.value == "building"]
    assert building_stalled.longest_s >= 3600


async def test_the_admission_count_starts_no_parallel_workers(
    database_url: str,
) -> None:
    """Even where the planner thinks parallel workers free, the engine's
    connections plan none: each would be a process started for one statement
    of a few rows (on a large store the count's bound, read in the same
    statement, looks to the planner like a third of the table)."""
    pool = open_pool(database_url, min_size=1, max_size=1)
    await pool.open(wait=True)
    try:
        async with pool.connection() as conn:
            plans = await plans_as_notices_async(conn)
            for setting in (
                "parallel_setup_cost = 0",
                "parallel_tuple_cost = 0",
                "min_parallel_table_scan_size = 0",
                "min_parallel_index_scan_size = 0",
            ):
                await conn.execute(f"SET {setting}")
        await OrdersView(pool).count_in_flight()
    finally:
        await pool.close()

    (count,) = [p for p in plans if "es.events" in p]
    assert "Gather" not in count
    assert "Parallel" not in count


async def test_a_batch_another_instance_already_applied_writes_nothing(
    es_pool: Pool,
) -> None:
    """A leader that lost its lock and applies a batch late is refused whole: its
    rows roll back with its checkpoint, and the row stays as the new leader left it.
    """
    store = PostgresEventStore(es_pool)
    history = await _recorded(store, retried_then_confirmed())
    raw = [RawEvent.of(e) for e in history]
    leader = _projection(es_pool)
    late = type(leader)(pool=es_pool, checkpoints=Checkpoints(es_pool))
    await leader.apply(raw[:3])
    await leader.apply(raw[3:])
    async with es_pool.connection() as conn:
        # What the late instance's rows would overwrite, had they committed.
        await conn.execute(
            "UPDATE gateway.orders_view SET version = 0 WHERE order_id = %s",
            (history[0].order_id,),
        )

    with pytest.raises(SupersededError):
        await late.apply(raw[:3])

    row = await _row(es_pool, history[0].order_id)
    assert row["status"] == "confirmed"
    assert row["version"] == 0
    assert await Checkpoints(es_pool).get(leader.subscriber) == raw[-1].global_position


async def test_a_checkpoint_rewound_by_hand_is_not_undone_by_the_running_leader(
    es_pool: Pool,
) -> None:
    """An operator rewinds the read model's checkpoint to 0 to rebuild it while a
    leader runs. The leader's next batch is refused rather than moving the
    checkpoint past the rewind, so the rebuild replays every event."""
    store = PostgresEventStore(es_pool)
    history = await _recorded(store, retried_then_confirmed())
    raw = [RawEvent.of(e) for e in history]
    leader = _projection(es_pool)
    await leader.apply(raw[:3])
    async with es_pool.connection() as conn:
        await conn.execute(
            "UPDATE es.checkpoints SET position = 0 WHERE subscriber = %s",
            (leader.subscriber,),
        )

    with pytest.raises(SupersededError):
        await leader.apply(raw[3:])

    assert await Checkpoints(es_pool).get(leader.subscriber) == 0


async def test_a_batch_that_writes_nothing_is_held_to_the_checkpoint_too(
    es_pool: Pool,
) -> None:
    """The same for a projection with nothing to write for a batch: its checkpoint
    moves only from where the batch was read after."""

    class _WritesNothing(TableProjection):
        subscriber = f"test:writes-nothing:{uuid4()}"

        def statements(self, batch: Sequence[EventEnvelope]) -> list[Statement]:
            return []

    store = PostgresEventStore(es_pool)
    raw = [RawEvent.of(e) for e in await _recorded(store, retried_then_confirmed())]
    idle = _WritesNothing(pool=es_pool, checkpoints=Checkpoints(es_pool))
    late = _WritesNothing(pool=es_pool, checkpoints=Checkpoints(es_pool))
    await idle.apply(raw[:3])
    await idle.apply(raw[3:])

    with pytest.raises(SupersededError):
        await late.apply(raw[:3])

    assert await Checkpoints(es_pool).get(idle.subscriber) == raw[-1].global_position


async def test_pages_of_the_order_list_hold_every_order_once_ties_included(
    es_pool: Pool,
) -> None:
    """Orders created in the same microsecond straddle a page boundary: keyset
    paging on (created_at, order_id) neither skips nor repeats one of them."""
    at = datetime(2001, 1, 1, tzinfo=UTC)
    mine = sorted((uuid4() for _ in range(7)), reverse=True)
    async with es_pool.connection() as conn:
        for order_id in mine:
            await conn.execute(
                "INSERT INTO gateway.orders_view (order_id, status, token_pair, side,"
                " amount, version, created_at, updated_at)"
                " VALUES (%s, 'pending', 'SOL-USDC', 'sell', 1, 1, %s, %s)",
                (order_id, at, at),
            )
    view = OrdersView(es_pool)
    seen: list[UUID] = []
    before: tuple[datetime, UUID] | None = None
    while True:
        page = await view.recent(status=None, limit=3, before=before)
        seen += [row["order_id"] for row in page]
        if len(page) < 3:
            break
        before = (page[-1]["created_at"], page[-1]["order_id"])

    assert len(seen) == len(set(seen))
    assert [order_id for order_id in seen if order_id in mine] == mine
