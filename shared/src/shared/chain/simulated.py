"""A simulated Solana in PostgreSQL: slots from wall time, a lander, real pool math.

State lives in schema ``chain`` (migration 0002), so it survives executor crashes
and several processes share one chain. The RPC calls are plain reads and one
insert, as on a real RPC node; landing is the validator's job: ``run_lander`` lands
due transactions in batches, one process at a time (a leader-elected advisory
lock), woken by a notification when a transaction arrives and announcing every
landing on another channel, so clients waiting for a signature need not spin.
"""

import hashlib
import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from shared.chain.base58 import b58encode
from shared.chain.execution import CompetingTrade, Execution, competing_trade, execute
from shared.chain.port import (
    Blockhash,
    ChainUnavailableError,
    SignatureStatus,
    TxExpired,
    TxLanded,
    TxPending,
    TxUnknown,
)
from shared.chain.transaction import (
    InvalidTransactionError,
    SwapInstruction,
    decode_transaction,
)
from shared.domain.genesis import genesis_pools, genesis_raw_price
from shared.domain.market import Market, drift_pool
from shared.domain.model import fixed_point
from shared.domain.pairs import SUPPORTED_PAIRS, Pair
from shared.domain.pools import POOL_STATE, CpPool, DlmmPool
from shared.domain.quotes import RouteLeg, Venue
from shared.domain.retry import FailureClass
from shared.postgres.leadership import Leader, lead_forever
from shared.postgres.wakeups import Wakeups
from shared.settings import Settings

Connection = AsyncConnection[TupleRow]
_BATCH = 200
# The lander re-checks expiries and its leadership at least this often when idle.
_IDLE_S = 1.0

LANDER_LOCK = "chain:lander"
RECEIVED_CHANNEL = "chain_received"  # a transaction arrived: the lander may have work
LANDED_CHANNEL = "chain_landed"  # transactions landed or expired: statuses changed

# The chain's clock is the database's: every process that sends, lands or asks
# for the block height reads the same one, so they agree on when a blockhash
# expires whatever their own clocks say.
_RECEIVE = f"""
WITH now AS (SELECT clock_timestamp() AS t),
received AS (
    INSERT INTO chain.transactions (signature, encoded, order_id, attempt,
        received_at, lands_at, last_valid_block_height, status)
    SELECT %(signature)s, %(encoded)s, %(order_id)s, %(attempt)s, now.t,
        now.t + %(delay_ms)s * interval '1 millisecond', %(lvbh)s,
        CASE WHEN floor(extract(epoch FROM now.t - %(started)s) * 1000
                        / %(slot_ms)s) > %(lvbh)s
             THEN 'expired' ELSE 'pending' END
      FROM now
    ON CONFLICT (signature) DO NOTHING
    RETURNING 1
)
SELECT pg_notify('{RECEIVED_CHANNEL}', '') FROM received
"""  # noqa: S608 - composed from constants only
_CLOCK = "SELECT clock_timestamp()"
_STATUSES = """
SELECT signature, status, slot, result FROM chain.transactions
WHERE signature = ANY(%s)
"""
# Expire what can no longer land, and say when the next pending transaction is
# due or expires (the CTE's update is invisible to the outer query, so the
# expired rows may count once more; the lander then simply looks again).
_EXPIRE_AND_NEXT = """
WITH expired AS (
    UPDATE chain.transactions SET status = 'expired'
    WHERE status = 'pending' AND last_valid_block_height < %(slot)s
      AND lands_at >= %(started)s
          + (last_valid_block_height + 1) * %(slot_ms)s * interval '1 millisecond'
    RETURNING 1
)
SELECT (SELECT count(*) FROM expired), min(lands_at), min(last_valid_block_height)
FROM chain.transactions WHERE status = 'pending'
"""
# clock_timestamp() is read after the statement's snapshot: no later than any
# landing, and no earlier than the commit of any row the statement sees.
_DUE = """
SELECT signature, encoded, lands_at, clock_timestamp() FROM chain.transactions
WHERE status = 'pending' AND lands_at <= %(now)s
ORDER BY lands_at, signature
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
"""
_LOCK_POOLS = """
SELECT venue, pair, state FROM chain.pools WHERE pair = ANY(%s)
ORDER BY pair, venue
FOR UPDATE
"""
_UPDATE_POOL = """
UPDATE chain.pools SET state = %(state)s, version = version + 1,
    updated_at = clock_timestamp()
WHERE venue = %(venue)s AND pair = %(pair)s
"""
_LANDED = """
UPDATE chain.transactions SET status = %(status)s, slot = %(slot)s, result = %(result)s
WHERE signature = %(signature)s
"""
_LEDGER = """
INSERT INTO chain.ledger (signature, kind, order_id, attempt, slot, pair, side, ok,
    error, amount_in, amount_out, legs)
VALUES (%(signature)s, %(kind)s, %(order_id)s, %(attempt)s, %(slot)s, %(pair)s,
    %(side)s, %(ok)s, %(error)s, %(amount_in)s, %(amount_out)s, %(legs)s)
"""
_ANNOUNCE = f"SELECT pg_notify('{LANDED_CHANNEL}', '')"

PoolKey = tuple[Venue, str]


@dataclass
class _Landing:
    """What one landing pass writes, in the order it happened."""

    pools: dict[PoolKey, CpPool | DlmmPool]
    moved: set[PoolKey] = field(default_factory=set)
    transactions: list[dict[str, Any]] = field(default_factory=list)
    ledger: list[dict[str, Any]] = field(default_factory=list)


class SimulatedChain:
    """The ``Chain`` port, plus the venues' ``PoolSource`` (an RPC account read)."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        settings: Settings,
        rng: random.Random,
    ) -> None:
        self._db = pool
        self._settings = settings
        self._rng = rng
        self._started: datetime | None = None
        self._market = Market(
            seed=settings.market_seed,
            slot_ms=settings.slot_ms,
            spread_min=settings.venue_spread_min,
            spread_max=settings.venue_spread_max,
            divergent_pairs=frozenset(settings.divergent_pairs),
            reversion_half_life_ms=settings.market_reversion_half_life_ms,
        )
        self.leads_landing = False  # whether this process's lander holds the lock

    @property
    def market(self) -> Market:
        return self._market

    async def ensure_genesis(self) -> None:
        """Start the clock and seed every pool, once; later calls change nothing.

        Raise ``ChainSettingsMismatchError`` when the chain was started with other
        settings than this process's: its slots and blockhashes would disagree
        with every other process's, and transactions in flight fail to land.
        """
        mine = (
            self._settings.market_seed,
            self._settings.slot_ms,
            self._settings.blockhash_valid_slots,
        )
        async with self._db.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO chain.genesis"
                " (started_at, seed, slot_ms, blockhash_valid_slots)"
                " VALUES (clock_timestamp(), %s, %s, %s) ON CONFLICT DO NOTHING",
                mine,
            )
            # A chain started before these were recorded takes this process's.
            await conn.execute(
                "UPDATE chain.genesis"
                " SET slot_ms = coalesce(slot_ms, %s),"
                "     blockhash_valid_slots = coalesce(blockhash_valid_slots, %s)"
                " WHERE slot_ms IS NULL OR blockhash_valid_slots IS NULL",
                mine[1:],
            )
            cursor = await conn.execute(
                "SELECT seed, slot_ms, blockhash_valid_slots FROM chain.genesis"
            )
            recorded = await cursor.fetchone()
            if recorded is not None:
                _check_started_with(recorded, mine)
            for state in genesis_pools(self._market):
                await conn.execute(
                    "INSERT INTO chain.pools (venue, pair, state) VALUES (%s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    (state.venue, state.pair.symbol, _state_json(state)),
                )
        await self._genesis()

    # --- RPC ---------------------------------------------------------------------

    async def latest_blockhash(self) -> Blockhash:
        self._maybe_fault()
        slot = await self._current_slot()
        return Blockhash(
            self._blockhash(slot), slot + self._settings.blockhash_valid_slots
        )

    async def block_height(self) -> int:
        self._maybe_fault()
        return await self._current_slot()

    async def send_transaction(self, encoded: str) -> str:
        """Accept signed bytes; the same bytes again are a harmless no-op.

        A network fault strikes either before the chain got the bytes or after
        (the caller cannot tell which), each half the time.
        """
        fault = self._rng.random() < self._settings.fault_network_rate
        if fault and self._rng.random() < 0.5:  # noqa: PLR2004 - before or after
            raise ChainUnavailableError("RPC unreachable: send not delivered")
        signature, instruction = decode_transaction(encoded)
        valid_from = instruction.last_valid_block_height - (
            self._settings.blockhash_valid_slots
        )
        if self._blockhash(valid_from) != instruction.blockhash:
            raise InvalidTransactionError("blockhash not found")
        if self._dropped(signature):
            # The RPC answers with the signature, but the leader never gets the
            # bytes: the chain will not know this signature, whatever is resent.
            return signature
        delay_ms = self._rng.uniform(
            self._settings.confirm_min_ms, self._settings.confirm_max_ms
        )
        async with self._db.connection() as conn:
            await conn.execute(
                _RECEIVE,
                {
                    "signature": signature,
                    "encoded": encoded,
                    "order_id": instruction.order_id,
                    "attempt": instruction.attempt,
                    "delay_ms": delay_ms,
                    "lvbh": instruction.last_valid_block_height,
                    "started": await self._genesis(),
                    "slot_ms": self._settings.slot_ms,
                },
            )
        if fault:
            raise ChainUnavailableError("RPC connection reset after send")
        return signature

    def landings(self) -> Wakeups:
        """The lander's ``NOTIFY`` at each batch it commits."""
        return Wakeups(self._settings.database_url, channel=LANDED_CHANNEL)

    async def signature_statuses(
        self, signatures: Sequence[str]
    ) -> list[SignatureStatus]:
        """One answer per signature, in order (``getSignatureStatuses``)."""
        self._maybe_fault()
        async with self._db.connection() as conn:
            cursor = await conn.execute(_STATUSES, (list(signatures),))
            rows = await cursor.fetchall()
        known = {
            signature: _status(status, slot, result)
            for signature, status, slot, result in rows
        }
        return [known.get(signature, TxUnknown()) for signature in signatures]

    async def read_pool(self, venue: Venue, pair: Pair) -> CpPool | DlmmPool:
        """The pool account now, market drift included (like ``getAccountInfo``)."""
        started = await self._genesis()
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                "SELECT state FROM chain.pools WHERE venue = %s AND pair = %s",
                (venue, pair.symbol),
            )
            row = await cursor.fetchone()
        if row is None:
            raise LookupError(f"no {venue} pool for {pair.symbol}")
        # The market as of now on this process's clock: a quote, not a landing.
        return self._drifted(
            POOL_STATE.validate_python(row[0]),
            self._slot(datetime.now(UTC), started),
        )

    # --- the validator -----------------------------------------------------------

    async def run_lander(self, conninfo: str) -> None:
        """Land due transactions forever, one process at a time (a leader lock)."""

        async def land(leader: Leader) -> None:
            async with Wakeups(conninfo, channel=RECEIVED_CHANNEL) as received:
                while True:
                    wait_s = await self.land_due()
                    await leader.still_leading()
                    await received.wait(min(wait_s, _IDLE_S))

        await lead_forever(conninfo, LANDER_LOCK, land, on_change=self._leading)

    def _leading(self, leading: bool) -> None:
        self.leads_landing = leading

    async def land_due(self) -> float:
        """Land or expire everything due now; return seconds until more is due.

        Each batch is one database transaction that locks its transactions (skip
        locked) and the pools they touch, so a second lander can never land a
        transaction twice, and announces itself on ``LANDED_CHANNEL`` at commit.
        """
        started = await self._genesis()
        async with self._db.connection() as conn:
            now = await _clock(conn)
            measured = time.monotonic()
            while True:
                # Pipelined: BEGIN goes with the first read, and the writes and
                # the announcement go together, just before COMMIT.
                async with conn.pipeline(), conn.transaction():
                    cursor = await conn.execute(_DUE, {"now": now, "limit": _BATCH})
                    due = await cursor.fetchall()
                    if due:
                        await self._land_batch(conn, due, started)
                if len(due) < _BATCH:
                    break
            cursor = await conn.execute(
                _EXPIRE_AND_NEXT,
                {
                    "slot": self._slot(now, started),
                    "started": started,
                    "slot_ms": self._settings.slot_ms,
                },
            )
            row = await cursor.fetchone()
            if row is not None and row[0]:
                await conn.execute(_ANNOUNCE)
        if row is None or row[1] is None:
            return _IDLE_S
        next_lands: datetime = row[1]
        lowest_valid_height: int = row[2]
        expires = started + timedelta(
            milliseconds=(lowest_valid_height + 1) * self._settings.slot_ms
        )
        wait: timedelta = min(next_lands, expires) - now
        return max(wait.total_seconds() - (time.monotonic() - measured), 0.0)

    async def _land_batch(
        self, conn: Connection, due: Sequence[TupleRow], started: datetime
    ) -> None:
        landing = [
            (
                signature,
                decode_transaction(encoded)[1],
                self._slot(lands_at, started),
                self._slot(read_at, started),
            )
            for signature, encoded, lands_at, read_at in due
        ]
        pairs = sorted({instruction.pair for _, instruction, _, _ in landing})
        cursor = await conn.execute(_LOCK_POOLS, (pairs,))
        batch = _Landing(
            pools={
                (Venue(venue), pair): POOL_STATE.validate_python(raw)
                for venue, pair, raw in await cursor.fetchall()
            }
        )
        for signature, instruction, slot, seen_at_slot in landing:
            self._land(batch, signature, instruction, slot, seen_at_slot)
        # Queued behind the caller's pipeline: sent with its COMMIT.
        async with conn.cursor() as writes:
            if batch.moved:
                await writes.executemany(
                    _UPDATE_POOL,
                    [
                        {
                            "state": _state_json(batch.pools[key]),
                            "venue": key[0],
                            "pair": key[1],
                        }
                        for key in sorted(batch.moved)
                    ],
                )
            await writes.executemany(_LANDED, batch.transactions)
            if batch.ledger:
                await writes.executemany(_LEDGER, batch.ledger)
            await writes.execute(_ANNOUNCE)

    def _land(
        self,
        batch: _Landing,
        signature: str,
        instruction: SwapInstruction,
        slot: int,
        seen_at_slot: int,
    ) -> None:
        # Bytes the lander sees only once their blockhash has expired (a send
        # whose commit stalled past it) land never, not in a slot gone by: anyone
        # who read the height past it, then the signature unknown, may already
        # have signed a new attempt.
        if max(slot, seen_at_slot) > instruction.last_valid_block_height:
            batch.transactions.append(
                {
                    "status": "expired",
                    "slot": None,
                    "result": None,
                    "signature": signature,
                }
            )
            return
        pair = SUPPORTED_PAIRS[instruction.pair]
        venues = sorted({leg.venue for leg in instruction.legs})
        pools = {
            venue: self._drifted(batch.pools[venue, pair.symbol], slot)
            for venue in venues
        }
        now_s = slot * self._settings.slot_ms // 1_000
        if self._rng.random() < self._settings.fault_slippage_rate:
            rival = competing_trade(instruction, pools, now_s=now_s)
            if rival is not None:
                pools[rival.venue] = rival.fill.pool
                batch.ledger.append(_rival_row(instruction, rival, slot))
        outcome = execute(instruction, pools, now_s=now_s)
        changed = outcome.pools if outcome.ok else pools
        for venue in venues:
            batch.pools[venue, pair.symbol] = changed[venue]
            batch.moved.add((venue, pair.symbol))
        result = _result(outcome, instruction, pair)
        batch.transactions.append(
            {
                "status": "landed",
                "slot": slot,
                "result": Jsonb(result),
                "signature": signature,
            }
        )
        batch.ledger.append(
            {
                "signature": signature,
                "kind": "order",
                "order_id": instruction.order_id,
                "attempt": instruction.attempt,
                "slot": slot,
                "pair": pair.symbol,
                "side": instruction.side,
                "ok": outcome.ok,
                "error": outcome.error,
                "amount_in": Decimal(result["amount_in"]),
                "amount_out": Decimal(result["amount_out"]),
                "legs": Jsonb(result["legs"]),
            }
        )

    async def _current_slot(self) -> int:
        async with self._db.connection() as conn:
            now = await _clock(conn)
        return self._slot(now, await self._genesis())

    async def _genesis(self) -> datetime:
        """When slot 0 began: read once, it never changes."""
        if self._started is None:
            async with self._db.connection() as conn:
                cursor = await conn.execute("SELECT started_at FROM chain.genesis")
                row = await cursor.fetchone()
            if row is None:
                raise RuntimeError("the chain has no genesis: call ensure_genesis()")
            self._started = row[0]
        return self._started

    def _drifted(self, state: CpPool | DlmmPool, slot: int) -> CpPool | DlmmPool:
        return drift_pool(
            state, self._market, genesis_price=genesis_raw_price(state.pair), slot=slot
        )

    def _slot(self, at: datetime, started: datetime) -> int:
        elapsed_ms = (at - started) / timedelta(milliseconds=1)
        return max(math.floor(elapsed_ms / self._settings.slot_ms), 0)

    def _blockhash(self, slot: int) -> str:
        seed = f"{self._settings.market_seed}:blockhash:{slot}".encode()
        return b58encode(hashlib.blake2b(seed, digest_size=32).digest())

    def _dropped(self, signature: str) -> bool:
        """Whether this transaction is one the network keeps dropping.

        Drops are a property of the transaction (its fee, its route to the leader),
        not a coin tossed per send: a dropped transaction stays dropped on every
        rebroadcast, so only its blockhash expiring ends the attempt.
        """
        digest = hashlib.blake2b(
            f"{self._settings.market_seed}:{signature}".encode(), digest_size=8
        ).digest()
        return int.from_bytes(digest) / 2**64 < self._settings.fault_drop_rate

    def _maybe_fault(self) -> None:
        if self._rng.random() < self._settings.fault_network_rate:
            raise ChainUnavailableError("RPC unreachable")


async def _clock(conn: Connection) -> datetime:
    cursor = await conn.execute(_CLOCK)
    row = await cursor.fetchone()
    if row is None:  # pragma: no cover - SELECT without FROM returns one row
        raise RuntimeError("no clock")
    now: datetime = row[0]
    return now


def _rival_row(
    instruction: SwapInstruction, rival: CompetingTrade, slot: int
) -> dict[str, Any]:
    pair = SUPPORTED_PAIRS[instruction.pair]
    in_token, out_token = pair.in_and_out(instruction.side)
    return {
        "signature": None,
        "kind": "competitor",
        "order_id": None,
        "attempt": None,
        "slot": slot,
        "pair": pair.symbol,
        "side": instruction.side,
        "ok": True,
        "error": None,
        "amount_in": in_token.to_units(rival.fill.amount_in),
        "amount_out": out_token.to_units(rival.fill.amount_out),
        "legs": Jsonb([{"venue": rival.venue, "bps": 10_000}]),
    }


def _status(
    status: str, slot: int | None, result: Mapping[str, Any] | None
) -> SignatureStatus:
    if status == "pending":
        return TxPending()
    if status == "expired":
        return TxExpired()
    if slot is None or result is None:
        # Never answer "expired" for a landed row: that would let a new attempt
        # sign again although a swap may have landed.
        raise RuntimeError(f"landed transaction without slot or result: {status}")
    return _landed(slot, result)


def _state_json(state: CpPool | DlmmPool) -> Jsonb:
    return Jsonb(POOL_STATE.dump_python(state, mode="json"))


class ChainSettingsMismatchError(Exception):
    """This process's chain settings are not those the chain was started with."""


_CHAIN_SETTINGS = ("MARKET_SEED", "SLOT_MS", "BLOCKHASH_VALID_SLOTS")


def _check_started_with(
    recorded: tuple[object, ...], mine: tuple[int, int, int]
) -> None:
    differ = [
        f"{name}={value} (the chain was started with {started})"
        for name, started, value in zip(_CHAIN_SETTINGS, recorded, mine, strict=True)
        if started != value
    ]
    if differ:
        raise ChainSettingsMismatchError(
            f"the simulated chain in this database was started with other settings:"
            f" {'; '.join(differ)}. Set them back, or start on a fresh database"
        )


def _result(
    outcome: Execution, instruction: SwapInstruction, pair: Pair
) -> dict[str, Any]:
    in_token, out_token = pair.in_and_out(instruction.side)
    bps = {leg.venue: leg.bps for leg in instruction.legs}
    legs = [
        RouteLeg(
            venue=venue,
            bps=bps[venue],
            in_amount=in_token.to_units(fill.amount_in),
            out_amount=out_token.to_units(fill.amount_out),
        ).model_dump(mode="json", by_alias=True)
        for venue, fill in outcome.fills
    ]
    return {
        "ok": outcome.ok,
        "error": outcome.error,
        "amount_in": fixed_point(in_token.to_units(outcome.amount_in_raw)),
        "amount_out": fixed_point(out_token.to_units(outcome.amount_out_raw)),
        "legs": legs,
    }


def _landed(slot: int, result: Mapping[str, Any]) -> TxLanded:
    return TxLanded(
        slot=slot,
        ok=bool(result["ok"]),
        error=FailureClass(result["error"]) if result["error"] else None,
        amount_in=Decimal(result["amount_in"]),
        amount_out=Decimal(result["amount_out"]),
        legs=tuple(RouteLeg.model_validate(leg) for leg in result["legs"]),
    )
