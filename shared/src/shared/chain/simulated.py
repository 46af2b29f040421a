"""A simulated Solana in PostgreSQL: slots from wall time, lazy landing, real pool math.

State lives in schema ``chain`` (migration 0002), so it survives executor crashes
and several processes can share one chain. Every RPC call first lands whatever is
due: transactions are locked with ``FOR UPDATE SKIP LOCKED`` and pools with a row
lock, so two processes never land one transaction twice.
"""

import hashlib
import math
import random
from collections.abc import Mapping
from datetime import datetime, timedelta
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
from shared.domain.pairs import SUPPORTED_PAIRS, Pair, Side, Token
from shared.domain.pools import POOL_STATE, CpPool, DlmmPool
from shared.domain.quotes import RouteLeg, Venue
from shared.domain.retry import FailureClass
from shared.settings import Settings

Connection = AsyncConnection[TupleRow]
_BATCH = 100

_CLOCK = "SELECT clock_timestamp(), started_at FROM chain.genesis"
_INSERT_TX = """
INSERT INTO chain.transactions (signature, encoded, order_id, attempt, received_at,
    lands_at, last_valid_block_height, status)
VALUES (%(signature)s, %(encoded)s, %(order_id)s, %(attempt)s, %(now)s,
    %(lands_at)s, %(lvbh)s, %(status)s)
ON CONFLICT (signature) DO NOTHING
"""
_EXPIRE = """
UPDATE chain.transactions t SET status = 'expired'
FROM (
    SELECT signature FROM chain.transactions
    WHERE status = 'pending' AND last_valid_block_height < %(slot)s
      AND lands_at >= %(started)s
          + (last_valid_block_height + 1) * %(slot_ms)s * interval '1 millisecond'
    FOR UPDATE SKIP LOCKED
) e
WHERE t.signature = e.signature
"""
_DUE = """
SELECT signature, encoded, lands_at FROM chain.transactions
WHERE status = 'pending' AND lands_at <= %(now)s
ORDER BY lands_at, signature
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
"""
_LOCK_POOLS = """
SELECT state FROM chain.pools WHERE pair = %(pair)s AND venue = ANY(%(venues)s)
ORDER BY venue
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
        self._market = Market(
            seed=settings.market_seed,
            slot_ms=settings.slot_ms,
            spread_min=settings.venue_spread_min,
            spread_max=settings.venue_spread_max,
            divergent_pairs=frozenset(settings.divergent_pairs),
            reversion_half_life_ms=settings.market_reversion_half_life_ms,
        )

    @property
    def market(self) -> Market:
        return self._market

    async def ensure_genesis(self) -> None:
        """Start the clock and seed every pool, once; later calls change nothing."""
        async with self._db.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO chain.genesis (started_at, seed)"
                " VALUES (clock_timestamp(), %s) ON CONFLICT DO NOTHING",
                (self._settings.market_seed,),
            )
            for state in genesis_pools(self._market):
                await conn.execute(
                    "INSERT INTO chain.pools (venue, pair, state) VALUES (%s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    (state.venue, state.pair.symbol, _state_json(state)),
                )

    async def latest_blockhash(self) -> Blockhash:
        self._maybe_fault()
        async with self._db.connection() as conn:
            now, started = await self._land_due(conn)
        slot = self._slot(now, started)
        return Blockhash(
            self._blockhash(slot), slot + self._settings.blockhash_valid_slots
        )

    async def block_height(self) -> int:
        self._maybe_fault()
        async with self._db.connection() as conn:
            now, started = await self._land_due(conn)
        return self._slot(now, started)

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
        async with self._db.connection() as conn:
            now, started = await self._land_due(conn)
            delay_ms = self._rng.uniform(
                self._settings.confirm_min_ms, self._settings.confirm_max_ms
            )
            expired = self._slot(now, started) > instruction.last_valid_block_height
            await conn.execute(
                _INSERT_TX,
                {
                    "signature": signature,
                    "encoded": encoded,
                    "order_id": instruction.order_id,
                    "attempt": instruction.attempt,
                    "now": now,
                    "lands_at": now + timedelta(milliseconds=delay_ms),
                    "lvbh": instruction.last_valid_block_height,
                    "status": "expired" if expired else "pending",
                },
            )
        if fault:
            raise ChainUnavailableError("RPC connection reset after send")
        return signature

    async def signature_status(self, signature: str) -> SignatureStatus:
        self._maybe_fault()
        async with self._db.connection() as conn:
            await self._land_due(conn)
            cursor = await conn.execute(
                "SELECT status, slot, result FROM chain.transactions"
                " WHERE signature = %s",
                (signature,),
            )
            row = await cursor.fetchone()
        if row is None:
            return TxUnknown()
        status, slot, result = row
        if status == "pending":
            return TxPending()
        if status == "expired":
            return TxExpired()
        return _landed(slot, result)

    async def read_pool(self, venue: Venue, pair: Pair) -> CpPool | DlmmPool:
        """The pool account now, market drift included (like ``getAccountInfo``)."""
        async with self._db.connection() as conn:
            now, started = await self._land_due(conn)
            cursor = await conn.execute(
                "SELECT state FROM chain.pools WHERE venue = %s AND pair = %s",
                (venue, pair.symbol),
            )
            row = await cursor.fetchone()
        if row is None:
            raise LookupError(f"no {venue} pool for {pair.symbol}")
        return self._drifted(
            POOL_STATE.validate_python(row[0]), self._slot(now, started)
        )

    async def _land_due(self, conn: Connection) -> tuple[datetime, datetime]:
        """Land every transaction whose time has come; return (now, genesis).

        One database transaction per landing, so a process holds the pool locks of
        one swap at a time and two processes can never deadlock on them.
        """
        async with conn.transaction():
            cursor = await conn.execute(_CLOCK)
            clock = await cursor.fetchone()
            if clock is None:
                raise RuntimeError("the chain has no genesis: call ensure_genesis()")
            now, started = clock
            await conn.execute(
                _EXPIRE,
                {
                    "slot": self._slot(now, started),
                    "started": started,
                    "slot_ms": self._settings.slot_ms,
                },
            )
        for _ in range(_BATCH):
            async with conn.transaction():
                cursor = await conn.execute(_DUE, {"now": now, "limit": 1})
                due = await cursor.fetchone()
                if due is None:
                    break
                signature, encoded, lands_at = due
                await self._land(
                    conn, signature, encoded, self._slot(lands_at, started)
                )
        return now, started

    async def _land(
        self, conn: Connection, signature: str, encoded: str, slot: int
    ) -> None:
        _, instruction = decode_transaction(encoded)
        if slot > instruction.last_valid_block_height:
            await conn.execute(
                _LANDED,
                {
                    "status": "expired",
                    "slot": None,
                    "result": None,
                    "signature": signature,
                },
            )
            return
        pair = SUPPORTED_PAIRS[instruction.pair]
        venues = sorted({leg.venue for leg in instruction.legs})
        cursor = await conn.execute(
            _LOCK_POOLS, {"pair": pair.symbol, "venues": venues}
        )
        pools = {
            state.venue: self._drifted(state, slot)
            for (raw,) in await cursor.fetchall()
            for state in (POOL_STATE.validate_python(raw),)
        }
        now_s = slot * self._settings.slot_ms // 1_000
        if self._rng.random() < self._settings.fault_slippage_rate:
            rival = competing_trade(instruction, pools, now_s=now_s)
            if rival is not None:
                pools[rival.venue] = rival.fill.pool
                await self._record_rival(conn, instruction, rival, slot)
        outcome = execute(instruction, pools, now_s=now_s)
        changed = outcome.pools if outcome.ok else pools
        for venue in venues:
            await conn.execute(
                _UPDATE_POOL,
                {
                    "state": _state_json(changed[venue]),
                    "venue": venue,
                    "pair": pair.symbol,
                },
            )
        result = _result(outcome, instruction, pair)
        await conn.execute(
            _LANDED,
            {
                "status": "landed",
                "slot": slot,
                "result": Jsonb(result),
                "signature": signature,
            },
        )
        await conn.execute(
            _LEDGER,
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
            },
        )

    async def _record_rival(
        self,
        conn: Connection,
        instruction: SwapInstruction,
        rival: CompetingTrade,
        slot: int,
    ) -> None:
        pair = SUPPORTED_PAIRS[instruction.pair]
        in_token, out_token = _tokens(pair, instruction.side)
        await conn.execute(
            _LEDGER,
            {
                "signature": None,
                "kind": "competitor",
                "order_id": None,
                "attempt": None,
                "slot": slot,
                "pair": pair.symbol,
                "side": instruction.side,
                "ok": True,
                "error": None,
                "amount_in": _units(rival.fill.amount_in, in_token.decimals),
                "amount_out": _units(rival.fill.amount_out, out_token.decimals),
                "legs": Jsonb([{"venue": rival.venue, "bps": 10_000}]),
            },
        )

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


def _state_json(state: CpPool | DlmmPool) -> Jsonb:
    return Jsonb(POOL_STATE.dump_python(state, mode="json"))


def _tokens(pair: Pair, side: Side) -> tuple[Token, Token]:
    return (pair.base, pair.quote) if side is Side.SELL else (pair.quote, pair.base)


def _units(raw: int, decimals: int) -> Decimal:
    return Decimal(raw).scaleb(-decimals)


def _result(
    outcome: Execution, instruction: SwapInstruction, pair: Pair
) -> dict[str, Any]:
    in_token, out_token = _tokens(pair, instruction.side)
    bps = {leg.venue: leg.bps for leg in instruction.legs}
    legs = [
        RouteLeg(
            venue=venue,
            bps=bps[venue],
            in_amount=_units(fill.amount_in, in_token.decimals),
            out_amount=_units(fill.amount_out, out_token.decimals),
        ).model_dump(mode="json", by_alias=True)
        for venue, fill in outcome.fills
    ]
    return {
        "ok": outcome.ok,
        "error": outcome.error,
        "amount_in": str(_units(outcome.amount_in_raw, in_token.decimals)),
        "amount_out": str(_units(outcome.amount_out_raw, out_token.decimals)),
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
