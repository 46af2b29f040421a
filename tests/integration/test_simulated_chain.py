"""The simulated Solana in PostgreSQL: idempotent sends, expiry, slippage, ledger."""

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from prometheus_client import REGISTRY
from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from shared.chain import (
    ChainUnavailableError,
    SignatureStatus,
    SignedTransaction,
    TxExpired,
    TxLanded,
    TxPending,
    TxUnknown,
    build_swap_transaction,
)
from shared.chain.simulated import (
    LANDER_LOCK,
    ChainSettingsMismatchError,
    SimulatedChain,
)
from shared.domain.pairs import SUPPORTED_PAIRS, Side
from shared.domain.pools import CpPool, DlmmPool
from shared.domain.quotes import Venue
from shared.domain.retry import FailureClass
from shared.domain.routing import plan_route
from shared.settings import Settings
from tests.conftest import fresh_database

pytestmark = pytest.mark.integration

PAIR = SUPPORTED_PAIRS["SOL-USDC"]
Db = AsyncConnectionPool[AsyncConnection[TupleRow]]


@pytest.fixture(scope="module")
def chain_db(infrastructure: tuple[str, str]) -> Iterator[str]:
    """A database of its own: these tests move pools and read the whole ledger."""
    with fresh_database(infrastructure[0], "chain") as url:
        yield url


@pytest.fixture(scope="module")
async def db(chain_db: str) -> AsyncIterator[Db]:
    pool: Db = AsyncConnectionPool(chain_db, kwargs={"autocommit": True}, open=False)
    await pool.open(wait=True)
    yield pool
    await pool.close()


def make_chain(db: Db, settings: Settings, **overrides: object) -> SimulatedChain:
    return SimulatedChain(db, settings.model_copy(update=overrides), random.Random(1))


@contextlib.asynccontextmanager
async def landing(chain: SimulatedChain, url: str) -> AsyncIterator[None]:
    """Run the chain's lander, as every executor process does, while inside."""
    lander = asyncio.create_task(chain.run_lander(url))
    try:
        yield
    finally:
        lander.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await lander


@pytest.fixture
async def chain(
    db: Db, settings: Settings, chain_db: str
) -> AsyncIterator[SimulatedChain]:
    chain = make_chain(db, settings)
    await chain.ensure_genesis()
    async with landing(chain, chain_db):
        yield chain


async def swap(
    chain: SimulatedChain,
    *,
    amount: str = "2",
    side: Side = Side.SELL,
    slippage_bps: int = 50,
    order_id: UUID | None = None,
) -> SignedTransaction:
    """Quote both venues through the chain and sign the chosen plan."""
    pools = {venue: await chain.read_pool(venue, PAIR) for venue in Venue}
    _, plan = plan_route(
        pools,
        pair=PAIR,
        side=side,
        amount=Decimal(amount),
        slippage_bps=slippage_bps,
        read_at=dict.fromkeys(Venue, datetime.now(UTC)),
        validity=timedelta(seconds=2),
    )
    blockhash = await chain.latest_blockhash()
    return build_swap_transaction(
        order_id=order_id or uuid4(),
        attempt=1,
        pair=PAIR,
        side=side,
        plan=plan,
        blockhash=blockhash.blockhash,
        last_valid_block_height=blockhash.last_valid_block_height,
    )


async def settle(
    chain: SimulatedChain, signature: str, timeout: float = 5.0
) -> SignatureStatus:
    """Poll until the status is no longer pending."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        [status] = await chain.signature_statuses([signature])
        if not isinstance(status, TxPending):
            return status
        assert asyncio.get_running_loop().time() < deadline, "still pending"
        await asyncio.sleep(0.05)


async def ledger_rows(
    db: Db, *, signature: str | None = None, order_id: UUID | None = None
) -> list[tuple[Any, ...]]:
    async with db.connection() as conn:
        cursor = await conn.execute(
            "SELECT kind, ok, error, amount_in, amount_out FROM chain.ledger"
            " WHERE signature = %s OR order_id = %s",
            (signature, order_id),
        )
        return await cursor.fetchall()


async def count(db: Db, query: str, *args: object) -> int:
    async with db.connection() as conn:
        cursor = await conn.execute(query.encode(), args)
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def test_genesis_is_idempotent(chain: SimulatedChain, db: Db) -> None:
    """A second ensure_genesis changes neither the clock nor any pool."""
    before = await chain.read_pool(Venue.RAYDIUM, PAIR)

    await chain.ensure_genesis()

    after = await chain.read_pool(Venue.RAYDIUM, PAIR)
    assert await count(db, "SELECT count(*) FROM chain.pools") == 2 * len(
        SUPPORTED_PAIRS
    )
    assert isinstance(before, CpPool)
    assert isinstance(after, CpPool)
    assert after.base_reserve == pytest.approx(before.base_reserve, rel=1e-3)


async def test_duplicate_send_lands_once(chain: SimulatedChain, db: Db) -> None:
    """Sending the same bytes twice returns one signature and lands one swap."""
    tx = await swap(chain)

    first = await chain.send_transaction(tx.encoded)
    second = await chain.send_transaction(tx.encoded)
    status = await settle(chain, first)
    third = await chain.send_transaction(tx.encoded)

    assert first == second == third == tx.signature
    assert isinstance(status, TxLanded)
    assert status.ok
    assert len(await ledger_rows(db, signature=tx.signature)) == 1


async def test_landed_amounts_match_the_ledger(chain: SimulatedChain, db: Db) -> None:
    """The status and the ledger agree on what moved, and the bound was honoured."""
    tx = await swap(chain, amount="3", order_id=uuid4())

    status = await settle(chain, await chain.send_transaction(tx.encoded))

    assert isinstance(status, TxLanded)
    [(kind, ok, error, amount_in, amount_out)] = await ledger_rows(
        db, order_id=tx.instruction.order_id
    )
    assert (kind, ok, error) == ("order", True, None)
    assert (amount_in, amount_out) == (status.amount_in, status.amount_out)
    assert amount_in == Decimal(3)
    assert amount_out * 10**6 >= tx.instruction.min_amount_out_raw
    assert sum(leg.in_amount for leg in status.legs) == amount_in


async def test_buy_receives_exactly_the_amount(chain: SimulatedChain) -> None:
    """An ExactOut swap lands with exactly the base amount out, input under bound."""
    tx = await swap(chain, amount="1.5", side=Side.BUY)

    status = await settle(chain, await chain.send_transaction(tx.encoded))

    assert isinstance(status, TxLanded)
    assert status.ok
    assert status.amount_out == Decimal("1.5")
    assert status.amount_in * 10**6 <= tx.instruction.max_amount_in_raw


async def test_slippage_failure_from_a_moved_pool(
    chain: SimulatedChain, db: Db
) -> None:
    """A tight swap quoted before a big one lands failed: fee paid, pool unmoved."""
    victim = await swap(chain, amount="5", slippage_bps=1)
    whale = await swap(chain, amount="4000", slippage_bps=5_000)

    await chain.send_transaction(whale.encoded)
    await asyncio.sleep(0.25)  # the whale lands first: sends land 100-200 ms later
    assert isinstance(await settle(chain, whale.signature), TxLanded)
    before = await chain.read_pool(Venue.METEORA, PAIR)
    status = await settle(chain, await chain.send_transaction(victim.encoded))

    assert isinstance(status, TxLanded)
    assert (status.ok, status.error) == (False, FailureClass.SLIPPAGE_EXCEEDED)
    assert status.amount_in == status.amount_out == 0
    [(_, ok, error, _, _)] = await ledger_rows(db, signature=victim.signature)
    assert (ok, error) == (False, "SLIPPAGE_EXCEEDED")
    after = await chain.read_pool(Venue.METEORA, PAIR)
    assert isinstance(before, DlmmPool)
    assert isinstance(after, DlmmPool)
    assert after.book.active_id >= before.book.active_id  # only arbitrage moved it


async def test_competing_trade_fault_is_computed_from_pool_state(
    db: Db, settings: Settings, chain_db: str
) -> None:
    """With fault_slippage_rate=1 a rival lands first and our bound fails on its own."""
    chain = make_chain(db, settings, fault_slippage_rate=1.0)
    tx = await swap(chain, amount="2", slippage_bps=30)

    async with landing(chain, chain_db):
        status = await settle(chain, await chain.send_transaction(tx.encoded))

    assert isinstance(status, TxLanded)
    assert status.error is FailureClass.SLIPPAGE_EXCEEDED
    rivals = await count(
        db,
        "SELECT count(*) FROM chain.ledger WHERE kind = 'competitor' AND slot = %s",
        status.slot,
    )
    assert rivals >= 1


async def test_blockhash_expiry(db: Db, settings: Settings, chain_db: str) -> None:
    """A transaction that cannot land by its last valid height expires, unledgered."""
    chain = make_chain(
        db, settings, blockhash_valid_slots=1, confirm_min_ms=300, confirm_max_ms=400
    )
    tx = await swap(chain)

    async with landing(chain, chain_db):
        signature = await chain.send_transaction(tx.encoded)
        status = await settle(chain, signature)

    assert isinstance(status, TxExpired)
    assert await chain.block_height() > tx.instruction.last_valid_block_height
    assert await ledger_rows(db, signature=signature) == []


@pytest.mark.parametrize(
    ("setting", "value"),
    [("market_seed", 8), ("slot_ms", 401), ("blockhash_valid_slots", 151)],
)
async def test_a_process_with_other_chain_settings_refuses_to_start(
    db: Db, settings: Settings, setting: str, value: int
) -> None:
    """Its slots or blockhashes would disagree with every other process's: the
    transactions in flight would fail to land, or land on another clock."""
    await make_chain(db, settings).ensure_genesis()

    with pytest.raises(ChainSettingsMismatchError) as refused:
        await make_chain(db, settings, **{setting: value}).ensure_genesis()

    started = getattr(settings, setting)
    assert f"{setting.upper()}={value} (the chain was started with {started})" in str(
        refused.value
    )


async def test_a_chain_from_before_its_settings_were_recorded_takes_the_first_ones(
    db: Db, settings: Settings
) -> None:
    """A chain started by an older release has only its seed recorded: the first
    process of this release records its own, and a later one with others is
    refused as on any chain."""
    await make_chain(db, settings).ensure_genesis()
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE chain.genesis SET slot_ms = NULL, blockhash_valid_slots = NULL"
        )

    await make_chain(db, settings).ensure_genesis()

    with pytest.raises(ChainSettingsMismatchError, match="SLOT_MS=401"):
        await make_chain(db, settings, slot_ms=401).ensure_genesis()


async def test_bytes_the_chain_sees_only_after_their_blockhash_expired_never_land(
    db: Db, settings: Settings
) -> None:
    """A send's insert read the clock in time, but its commit stalled past expiry.
    An executor that saw the height pass, then the signature still unknown, has
    signed a new attempt: the late bytes must expire, or the order swaps twice."""
    await make_chain(db, settings).ensure_genesis()
    # Short-lived blockhashes, without recording them as the chain's own.
    chain = make_chain(db, settings, blockhash_valid_slots=2)
    tx = await swap(chain)
    async with db.connection() as conn:
        cursor = await conn.execute("SELECT clock_timestamp()")
        row = await cursor.fetchone()
    assert row is not None
    read_in_time = row[0]
    while await chain.block_height() <= tx.instruction.last_valid_block_height:
        await asyncio.sleep(0.02)
    [seen] = await chain.signature_statuses([tx.signature])
    assert isinstance(seen, TxUnknown)

    async with db.connection() as conn:  # the stalled commit
        await conn.execute(
            "INSERT INTO chain.transactions (signature, encoded, order_id, attempt,"
            " received_at, lands_at, last_valid_block_height, status)"
            " VALUES (%s, %s, %s, 1, %s, %s, %s, 'pending')",
            (
                tx.signature,
                tx.encoded,
                tx.instruction.order_id,
                read_in_time,
                read_in_time,
                tx.instruction.last_valid_block_height,
            ),
        )
    await chain.land_due()

    [status] = await chain.signature_statuses([tx.signature])
    assert isinstance(status, TxExpired)
    assert await ledger_rows(db, signature=tx.signature) == []


async def test_unknown_signature(chain: SimulatedChain) -> None:
    """A signature the chain never received is unknown."""
    assert isinstance((await chain.signature_statuses(["1" * 88]))[0], TxUnknown)


async def test_network_fault_on_send_is_ambiguous(
    db: Db, settings: Settings, chain_db: str
) -> None:
    """A failing send may or may not have delivered; resending the bytes is safe."""
    faulty = make_chain(db, settings, fault_network_rate=1.0)
    healthy = make_chain(db, settings)
    txs = [await swap(healthy) for _ in range(12)]

    for tx in txs:
        with pytest.raises(ChainUnavailableError):
            await faulty.send_transaction(tx.encoded)
    seen = await healthy.signature_statuses([tx.signature for tx in txs])
    async with landing(healthy, chain_db):
        for tx in txs:
            await healthy.send_transaction(tx.encoded)
        landed = [await settle(healthy, tx.signature) for tx in txs]

    assert any(isinstance(s, TxUnknown) for s in seen)
    assert any(isinstance(s, TxPending) for s in seen)
    assert all(isinstance(s, TxLanded) for s in landed)


async def test_two_landers_never_land_a_transaction_twice(
    db: Db, settings: Settings
) -> None:
    """Two processes landing one database at once land each transaction once.

    Only one lander runs at a time in production (a leader lock); this drives two
    landing passes concurrently to show the row locks alone keep it exactly-once.
    """
    one, two = make_chain(db, settings), make_chain(db, settings)
    txs = [await swap(one, amount="0.5") for _ in range(40)]
    for i, tx in enumerate(txs):
        await (one if i % 2 else two).send_transaction(tx.encoded)

    async def land(chain: SimulatedChain) -> None:
        for _ in range(60):
            await chain.land_due()
            await asyncio.sleep(0.01)

    await asyncio.gather(land(one), land(two), land(one), land(two))
    statuses = await one.signature_statuses([tx.signature for tx in txs])

    assert all(isinstance(s, TxLanded) for s in statuses)
    for tx in txs:
        assert len(await ledger_rows(db, signature=tx.signature)) == 1


def lander_lock_refusals() -> float:
    labels = {"lock": LANDER_LOCK, "outcome": "refused"}
    return REGISTRY.get_sample_value("oe_leader_lock_tries_total", labels) or 0.0


async def test_only_one_lander_leads_and_a_standby_takes_over(
    db: Db, settings: Settings, chain_db: str
) -> None:
    """A second lander waits; when the leader stops, it lands what arrives next."""
    one, two = make_chain(db, settings), make_chain(db, settings)
    first = await swap(one)
    leader = asyncio.create_task(one.run_lander(chain_db))
    try:
        await one.send_transaction(first.encoded)
        assert isinstance(await settle(one, first.signature), TxLanded)
        assert one.leads_landing
        refused_before = lander_lock_refusals()
        async with landing(two, chain_db):
            async with asyncio.timeout(8):  # until ``two`` has tried and been refused
                while lander_lock_refusals() == refused_before:
                    await asyncio.sleep(0.01)
            assert not two.leads_landing, "a second lander took the lock"
            leader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await leader
            async with asyncio.timeout(8):
                while not two.leads_landing:
                    await asyncio.sleep(0.05)
            second = await swap(two)
            await two.send_transaction(second.encoded)
            status = await settle(two, second.signature, timeout=8)
    finally:
        leader.cancel()
    assert isinstance(status, TxLanded)
