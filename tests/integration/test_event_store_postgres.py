"""The event store on PostgreSQL: the contract, plus what only a real server shows.

Concurrency (dense commit-ordered positions under racing writers), the append-only
triggers, the migrations, checkpoints and the LISTEN wake-ups.
"""

import asyncio
import contextlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg import sql

from shared.eventstore.checkpoints import Checkpoints
from shared.eventstore.follower import Follower
from shared.eventstore.pool import Pool, open_pool
from shared.eventstore.port import (
    ANY_VERSION,
    NO_STREAM,
    AppendResult,
    EventIdConflictError,
    RawEvent,
    UnreadableStreamError,
    WrongExpectedVersionError,
)
from shared.eventstore.postgres import (
    APPEND_BATCH,
    APPEND_EVENTS,
    STORE_CHANNEL,
    PostgresEventStore,
)
from shared.messaging.relay import to_message
from shared.messaging.topology import routing_key
from shared.migrations import migrate
from shared.postgres.wakeups import Wakeups
from tests.conftest import fresh_database
from tests.contracts.event_store import EventStoreContract, new_events
from tests.integration.plans import plans_as_notices

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_store(es_pool: Pool) -> PostgresEventStore:
    return PostgresEventStore(es_pool)


class TestPostgresEventStore(EventStoreContract):
    @pytest.fixture
    def store(self, pg_store: PostgresEventStore) -> PostgresEventStore:
        return pg_store


async def test_tailing_reader_sees_every_position_once_under_concurrent_writers(
    pg_store: PostgresEventStore,
) -> None:
    """A reader polling read_all never skips or repeats a position while 20 write."""
    writers, per_writer = 20, 50
    streams = [uuid4() for _ in range(writers)]
    head = await pg_store.head_position()
    seen: list[int] = []
    ours: dict[UUID, list[int]] = {s: [] for s in streams}

    async def write(stream: UUID) -> None:
        for version in range(per_writer):
            await pg_store.append(stream, new_events(1), version)

    async def tail() -> None:
        position = head
        while sum(map(len, ours.values())) < writers * per_writer:
            batch = await pg_store.read_all(position, limit=100)
            for envelope in batch:
                seen.append(envelope.global_position)
                if envelope.order_id in ours:
                    ours[envelope.order_id].append(envelope.stream_version)
            if batch:
                position = batch[-1].global_position
            else:
                await asyncio.sleep(0.001)

    async with asyncio.timeout(60):
        await asyncio.gather(tail(), *(write(s) for s in streams))

    assert seen == list(range(head + 1, head + 1 + len(seen)))
    assert all(v == list(range(1, per_writer + 1)) for v in ours.values())


async def test_racing_writers_at_one_version_have_exactly_one_winner(
    pg_store: PostgresEventStore,
) -> None:
    """Of many writers appending at the same version, one wins and the rest conflict."""
    stream = uuid4()
    await pg_store.append(stream, new_events(1), NO_STREAM)

    for version in range(1, 6):
        results = await asyncio.gather(
            *(pg_store.append(stream, new_events(1), version) for _ in range(12)),
            return_exceptions=True,
        )

        winners = [r for r in results if isinstance(r, AppendResult)]
        losers = [r for r in results if isinstance(r, WrongExpectedVersionError)]
        assert len(winners) == 1
        assert len(losers) == 11
        assert {loser.actual for loser in losers} == {version + 1}
    assert len(await pg_store.read_stream(stream)) == 6


async def test_refused_appends_under_contention_leave_no_hole(
    pg_store: PostgresEventStore,
) -> None:
    """Rolled-back appends give their positions back: the log stays dense."""
    streams = [uuid4() for _ in range(4)]
    head = await pg_store.head_position()

    # Every stream gets 8 racing creators: 4 winners, 28 refused appends.
    await asyncio.gather(
        *(pg_store.append(s, new_events(2), NO_STREAM) for s in streams * 8),
        return_exceptions=True,
    )

    new_head = await pg_store.head_position()
    positions = [e.global_position for e in await pg_store.read_all(head)]
    assert positions == list(range(head + 1, new_head + 1))
    assert new_head - head >= 8


@pytest.mark.parametrize("expected", [NO_STREAM, ANY_VERSION])
async def test_concurrent_retries_of_one_append_record_it_once(
    pg_store: PostgresEventStore, expected: int
) -> None:
    """Racing copies of one append all succeed with the same positions; one is kept.

    Exactly one of them recorded the events; the others say they replayed it.
    """
    stream = uuid4()
    events = new_events(3)

    results = await asyncio.gather(
        *(pg_store.append(stream, events, expected) for _ in range(10))
    )

    positions = {(r.first_position, r.last_position, r.stream_version) for r in results}
    assert len(positions) == 1
    assert sum(not r.replayed for r in results) == 1
    assert len(await pg_store.read_stream(stream)) == 3


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE es.events SET event_type = 'Tampered' WHERE global_position = %s",
        "DELETE FROM es.events WHERE global_position = %s",
        "TRUNCATE es.events",
    ],
)
async def test_changing_recorded_events_by_hand_is_refused(
    pg_store: PostgresEventStore, database_url: str, statement: str
) -> None:
    """Even a hand-typed UPDATE, DELETE or TRUNCATE cannot rewrite history."""
    result = await pg_store.append(uuid4(), new_events(1), NO_STREAM)
    params = (result.first_position,) if "%s" in statement else ()

    async with await psycopg.AsyncConnection.connect(
        database_url, autocommit=True
    ) as conn:
        with pytest.raises(psycopg.Error, match="append-only") as caught:
            # force_rollback: should the trigger ever be missing, undo the damage.
            async with conn.transaction(force_rollback=True):
                await conn.execute(statement, params)

    assert caught.value.sqlstate == "ES004"
    (envelope,) = await pg_store.read_all(result.first_position - 1, limit=1)
    assert envelope.type == "RoutingStarted"


def test_migrating_a_migrated_database_is_a_no_op(database_url: str) -> None:
    """Every service migrates at start; the second and later runs change nothing."""
    assert migrate(database_url) == []
    assert migrate(database_url) == []


def test_concurrent_migrations_apply_each_file_once(
    infrastructure: tuple[str, str],
) -> None:
    """Services starting together on a new database apply each migration once."""
    server_url, _ = infrastructure
    dbname = f"oe_test_migrate_{uuid4().hex[:10]}"
    url = psycopg.conninfo.make_conninfo(server_url, dbname=dbname)
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    try:
        with ThreadPoolExecutor(4) as pool:
            runs = list(pool.map(migrate, [url] * 4))
        with psycopg.connect(url) as conn:
            ledger = [
                v for (v,) in conn.execute("SELECT version FROM schema_migrations")
            ]
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(dbname)
                )
            )

    applied = sorted(v for run in runs for v in run)
    assert applied == sorted(ledger)
    assert "0001_event_store" in applied


async def test_checkpoint_starts_at_zero_and_only_moves_forward(
    es_pool: Pool,
) -> None:
    """A subscriber resumes from its furthest position; late writers cannot rewind."""
    checkpoints = Checkpoints(es_pool)
    name = f"test:{uuid4()}"

    assert await checkpoints.get(name) == 0
    assert await checkpoints.advance(name, 10) is True
    assert await checkpoints.advance(name, 7) is False
    assert await checkpoints.advance(name, 10) is False
    assert await checkpoints.get(name) == 10


async def test_checkpoint_commits_with_the_callers_transaction(es_pool: Pool) -> None:
    """A projection's checkpoint is kept only if its own transaction commits."""
    checkpoints = Checkpoints(es_pool)
    name = f"test:{uuid4()}"

    async with es_pool.connection() as conn:
        async with conn.transaction(force_rollback=True):
            await checkpoints.advance(name, 5, conn=conn)
            assert await checkpoints.get(name, conn=conn) == 5
        assert await checkpoints.get(name) == 0
        async with conn.transaction():
            await checkpoints.advance(name, 6, conn=conn)

    assert await checkpoints.get(name) == 6


async def test_wakeups_return_early_on_an_append(
    pg_store: PostgresEventStore, database_url: str
) -> None:
    """A waiting reader wakes on an append instead of sleeping out its poll interval."""
    async with Wakeups(database_url, channel=STORE_CHANNEL) as wakeups:
        await wakeups.wait(0.01)  # connects and listens
        await wakeups.wait(0.01)  # drains anything earlier tests notified
        waiter = asyncio.create_task(wakeups.wait(30))
        await asyncio.sleep(0.1)
        assert not waiter.done()

        await pg_store.append(uuid4(), new_events(1), NO_STREAM)

        async with asyncio.timeout(5):
            await waiter


async def test_wakeups_survive_a_lost_connection(
    pg_store: PostgresEventStore, database_url: str
) -> None:
    """After the listener's connection dies, waiting reconnects and works again."""
    async with Wakeups(database_url, channel=STORE_CHANNEL) as wakeups:
        await wakeups.wait(0.01)
        assert wakeups._conn is not None
        pid = wakeups._conn.info.backend_pid
        async with await psycopg.AsyncConnection.connect(
            database_url, autocommit=True
        ) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

        async with asyncio.timeout(5):
            await wakeups.wait(10)  # notices the loss
            await wakeups.wait(10)  # reconnects
        waiter = asyncio.create_task(wakeups.wait(30))
        await asyncio.sleep(0.1)
        await pg_store.append(uuid4(), new_events(1), NO_STREAM)
        async with asyncio.timeout(5):
            await waiter


class ReadsCounted(PostgresEventStore):
    """The store, telling how often the log was read."""

    reads = 0

    async def read_all_raw(
        self, after_position: int = 0, limit: int = 1000
    ) -> list[RawEvent]:
        self.reads += 1
        return await super().read_all_raw(after_position, limit)


async def test_a_lingering_follower_takes_events_close_together_in_one_batch(
    pg_store: PostgresEventStore, es_pool: Pool, database_url: str
) -> None:
    """A read model waits briefly after a wake-up: an order's statuses, arriving
    milliseconds apart, are applied with one read and one commit, not one each."""
    subscriber = f"test-linger:{uuid4()}"
    checkpoints = Checkpoints(es_pool)
    await checkpoints.advance(subscriber, await pg_store.head_position())
    batches: list[int] = []

    async def handle(batch: Sequence[RawEvent]) -> None:
        batches.append(len(batch))
        await checkpoints.advance(subscriber, batch[-1].global_position)

    store = ReadsCounted(es_pool)
    follower = Follower(
        subscriber=subscriber,
        conninfo=database_url,
        store=store,
        checkpoints=checkpoints,
        handle=handle,
        # Far longer than the three appends below take, even on a slow machine.
        linger_s=2.0,
    )
    following = asyncio.create_task(follower.run())
    try:
        # Caught up: it has read to the end of the log and listens. Its next read
        # comes only after a wake-up (or a poll) and the linger.
        async with asyncio.timeout(10):
            while store.reads == 0:
                await asyncio.sleep(0.005)
        stream = uuid4()
        for version in range(3):
            await pg_store.append(
                stream, new_events(1, first_attempt=version + 1), version
            )
            await asyncio.sleep(0.05)
        async with asyncio.timeout(10):
            while sum(batches) < 3:
                await asyncio.sleep(0.05)
    finally:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following

    assert batches == [3]
    assert store.reads == 2


async def test_the_relay_forwards_an_event_type_this_release_does_not_know(
    infrastructure: tuple[str, str],
) -> None:
    """A newer release recorded a type this one cannot parse (a rolling upgrade):
    the relay still reads it and the events after it, with their routing keys."""
    with fresh_database(infrastructure[0], "future_type") as url:
        pool = open_pool(url, min_size=1, max_size=2, name="future-type")
        await pool.open(wait=True)
        try:
            store = PostgresEventStore(pool)
            stream = uuid4()
            await store.append(stream, new_events(1), NO_STREAM)
            async with pool.connection() as conn:
                await conn.execute(
                    APPEND_EVENTS,
                    (
                        stream,
                        1,
                        [uuid4()],
                        ["OrderRepriced"],
                        ['{"type": "OrderRepriced", "limitPrice": "163.2"}'],
                        [uuid4()],
                        [None],
                    ),
                )
            await store.append(stream, new_events(1, first_attempt=2), 2)

            raw = await store.read_all_raw(0, limit=10)
            with pytest.raises(UnreadableStreamError):
                await store.read_all(0, limit=10)
            with pytest.raises(UnreadableStreamError):
                await store.read_stream(stream)
        finally:
            await pool.close()

    assert [r.type for r in raw] == [
        "RoutingStarted",
        "OrderRepriced",
        "RoutingStarted",
    ]
    unknown = to_message(raw[1])
    assert unknown.type == "OrderRepriced"
    assert unknown.headers["stream-version"] == 2
    assert b'"limitPrice":"163.2"' in unknown.body.replace(b" ", b"")
    assert routing_key(raw[1].type) == "order.OrderRepriced"


async def _transactions_of(pool: Pool, positions: Sequence[int]) -> int:
    """How many transactions recorded the events at these positions."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(DISTINCT xmin::text) FROM es.events"
            " WHERE global_position = ANY(%s)",
            (list(positions),),
        )
        row = await cur.fetchone()
    assert row is not None
    count: int = row[0]
    return count


async def test_concurrent_appends_share_transactions_and_each_keeps_its_outcome(
    pg_store: PostgresEventStore, es_pool: Pool
) -> None:
    """Appends made at once are committed together, yet a stale one fails alone,
    a repeated one is a replay, and two to one stream apply in turn."""
    streams = [uuid4() for _ in range(40)]
    stale, shared = uuid4(), uuid4()
    await pg_store.append(stale, new_events(1), NO_STREAM)
    repeated = new_events(2)

    results = await asyncio.gather(
        *(pg_store.append(s, new_events(1), NO_STREAM) for s in streams),
        pg_store.append(stale, new_events(1), NO_STREAM),
        pg_store.append(shared, new_events(1), NO_STREAM),
        pg_store.append(shared, new_events(1), 1),
        pg_store.append(uuid4(), repeated, NO_STREAM),
        pg_store.append(uuid4(), repeated, NO_STREAM),
        return_exceptions=True,
    )

    *fresh, refused, shared_1, shared_2, original, copy = results
    assert all(isinstance(r, AppendResult) and not r.replayed for r in fresh)
    assert isinstance(refused, WrongExpectedVersionError)
    assert refused.actual == 1
    assert isinstance(shared_1, AppendResult)
    assert isinstance(shared_2, AppendResult)
    assert (shared_1.stream_version, shared_2.stream_version) == (1, 2)
    assert isinstance(original, AppendResult)
    assert not original.replayed
    assert isinstance(copy, EventIdConflictError)  # same ids, another stream
    positions = [r.first_position for r in fresh if isinstance(r, AppendResult)]
    assert await _transactions_of(es_pool, positions) <= len(positions) // 4


async def test_a_malformed_batch_records_nothing(
    pg_store: PostgresEventStore, es_pool: Pool
) -> None:
    """Counts that do not add up to the events given are refused whole."""
    head = await pg_store.head_position()
    async with es_pool.connection() as conn:
        with pytest.raises(psycopg.Error) as caught:
            await conn.execute(
                APPEND_BATCH,
                (
                    [uuid4(), uuid4()],
                    [NO_STREAM, NO_STREAM],
                    [1, 2],
                    [uuid4(), uuid4()],
                    ["RoutingStarted"] * 2,
                    ['{"type": "RoutingStarted", "attempt": 1}'] * 2,
                    [uuid4()] * 2,
                    [None] * 2,
                ),
            )

    assert caught.value.sqlstate == "22023"
    assert await pg_store.head_position() == head


@pytest.mark.parametrize("function", ["append_batch", "append_events"])
async def test_the_replay_check_probes_the_index_on_a_store_that_grew(
    infrastructure: tuple[str, str], function: str
) -> None:
    """A connection that planned its appends while the store was empty still
    probes the event id index once the store has grown, statistics or none:
    a join by scanning the table made each append slower as the store grew."""
    body = '{"type": "RoutingStarted", "attempt": 1}'

    def one_append(conn: psycopg.Connection) -> None:
        ids = [uuid4()]
        if function == "append_batch":
            params: tuple[object, ...] = (
                [uuid4()], [0], [1], ids, ["RoutingStarted"], [body], [uuid4()], [None]
            )  # fmt: skip
            conn.execute(APPEND_BATCH, params).fetchall()
        else:
            params = (uuid4(), 0, ids, ["RoutingStarted"], [body], [uuid4()], [None])
            conn.execute(APPEND_EVENTS, params).fetchall()

    with (
        fresh_database(infrastructure[0], f"plans_{function}") as url,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        for _ in range(10):  # planned, and the plans kept, on a near-empty store
            one_append(conn)
        for _ in range(40):  # the store grows; nobody gathers statistics
            conn.execute(
                "INSERT INTO es.events (global_position, stream_id, stream_version,"
                " event_id, event_type, data, correlation_id)"
                " SELECT c.last_position + g, gen_random_uuid(), 1,"
                " gen_random_uuid(), 'RoutingStarted', %s::jsonb, gen_random_uuid()"
                " FROM es.position_counter AS c, generate_series(1, 100) AS g",
                (body,),
            )
            conn.execute(
                "UPDATE es.position_counter SET last_position = last_position + 100"
            )
        plans = plans_as_notices(conn)
        one_append(conn)

    (replay_check,) = [p for p in plans if "JOIN es.events" in p]
    assert "events_event_id_uq" in replay_check
    assert "Hash Join" not in replay_check
    assert "Seq Scan on events" not in replay_check


async def test_appends_hold_up_where_the_database_defaults_to_repeatable_read(
    infrastructure: tuple[str, str],
) -> None:
    """A DBA sets the database's default isolation to REPEATABLE READ: contended
    appends still all succeed, as the store runs its statements at READ COMMITTED
    (each waits for the log's counter row, then reads what committed meanwhile)."""
    with fresh_database(infrastructure[0], "repeatable_read") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            (name,) = conn.execute("SELECT current_database()").fetchone() or ("",)
            conn.execute(
                sql.SQL(
                    "ALTER DATABASE {} SET default_transaction_isolation"
                    " = 'repeatable read'"
                ).format(sql.Identifier(name))
            )
        pool = open_pool(url, min_size=4, max_size=4)
        await pool.open(wait=True)
        try:
            async with pool.connection() as pooled:
                cursor = await pooled.execute("SHOW default_transaction_isolation")
                default = await cursor.fetchone()
            # One store per writer: no shared transaction, every append contends.
            stores = [PostgresEventStore(pool) for _ in range(4)]
            streams = [uuid4() for _ in stores]

            async def write(store: PostgresEventStore, stream: UUID) -> None:
                for version in range(25):
                    await store.append(stream, new_events(1), version)

            await asyncio.gather(*map(write, stores, streams))
            recorded = [await stores[0].read_stream(s) for s in streams]
            log = await stores[0].read_all_raw(0, limit=1000)
        finally:
            await pool.close()

        with psycopg.connect(url) as plain:
            (elsewhere,) = plain.execute(
                "SHOW default_transaction_isolation"
            ).fetchone() or ("",)

    assert elsewhere == "repeatable read"  # the database's default, as set
    assert default == ("read committed",)  # the store's sessions, whatever it is
    assert all([e.stream_version for e in r] == list(range(1, 26)) for r in recorded)
    assert [e.global_position for e in log] == list(range(1, 101))


async def test_times_read_back_are_utc_whatever_the_servers_zone(
    infrastructure: tuple[str, str],
) -> None:
    """A server set to another zone (a managed database's default, say): the
    events' times still come back in UTC, so the API writes every time as
    ``…Z``."""
    with fresh_database(infrastructure[0], "tokyo_time") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            (name,) = conn.execute("SELECT current_database()").fetchone() or ("",)
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET timezone = 'Asia/Tokyo'").format(
                    sql.Identifier(name)
                )
            )
        pool = open_pool(url, min_size=1, max_size=1)
        await pool.open(wait=True)
        try:
            store = PostgresEventStore(pool)
            stream = uuid4()
            await store.append(stream, new_events(1), NO_STREAM)
            (event,) = await store.read_stream(stream)
        finally:
            await pool.close()

    assert event.recorded_at.utcoffset() == timedelta(0)
    assert event.model_dump(mode="json")["recorded_at"].endswith("Z")
