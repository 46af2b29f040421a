"""The order list read model: a projection of the event store into one table.

The projector tails the store by global position and writes the rows and its
checkpoint in one transaction, so a crash never applies an event twice or skips
one. One gateway replica projects at a time (advisory lock).
"""

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import dict_row

from shared.domain.envelope import EventEnvelope
from shared.domain.events import (
    OrderAccepted,
    OrderFailed,
    RetryScheduled,
    RouteSelected,
    RoutingStarted,
    SwapConfirmed,
    TransactionSubmitted,
)
from shared.eventstore.checkpoints import Checkpoints
from shared.eventstore.leadership import leadership, still_leader
from shared.eventstore.listener import StoreWakeups
from shared.eventstore.port import EventStore

logger = logging.getLogger(__name__)

PROJECTION = "projection:gateway.orders_view"
PROJECTION_LOCK_KEY = 0x6F652D6F72646572  # "oe-order"

_INSERT = """
INSERT INTO gateway.orders_view
    (order_id, status, token_pair, side, amount, client_order_id, version,
     created_at, updated_at)
VALUES (%(order_id)s, %(status)s, %(token_pair)s, %(side)s, %(amount)s,
        %(client_order_id)s, %(version)s, %(at)s, %(at)s)
ON CONFLICT (order_id) DO NOTHING
"""

_UPDATE = """
UPDATE gateway.orders_view SET
    status = %(status)s,
    version = %(version)s,
    updated_at = %(at)s,
    attempts = GREATEST(attempts, %(attempt)s),
    venue = COALESCE(%(venue)s, venue),
    tx_hash = COALESCE(%(tx_hash)s, tx_hash),
    final_price = COALESCE(%(final_price)s, final_price),
    failure_reason = COALESCE(%(failure_reason)s, failure_reason)
WHERE order_id = %(order_id)s AND version < %(version)s
"""


def _row(envelope: EventEnvelope) -> tuple[str, dict[str, Any]]:
    event = envelope.event
    params: dict[str, Any] = {
        "order_id": envelope.order_id,
        "status": envelope.status.value,
        "version": envelope.stream_version,
        "at": envelope.recorded_at,
        "attempt": 0,
        "venue": None,
        "tx_hash": None,
        "final_price": None,
        "failure_reason": None,
    }
    match event:
        case OrderAccepted():
            params |= {
                "token_pair": event.token_pair,
                "side": event.side.value,
                "amount": event.amount,
                "client_order_id": event.client_order_id,
            }
            return _INSERT, params
        case (
            RoutingStarted()
            | RouteSelected()
            | TransactionSubmitted()
            | RetryScheduled()
        ):
            params["attempt"] = event.attempt
            if isinstance(event, RouteSelected):
                params["venue"] = _venues(event)
            if isinstance(event, TransactionSubmitted):
                params["tx_hash"] = event.signature
        case SwapConfirmed():
            params |= {
                "attempt": event.attempt,
                "tx_hash": event.tx_hash,
                "final_price": event.final_price,
            }
        case OrderFailed():
            params |= {"attempt": event.failed_attempt, "failure_reason": event.reason}
    return _UPDATE, params


def _venues(event: RouteSelected) -> str:
    return " / ".join(
        f"{leg.venue.value} {leg.bps / 100:g}%" for leg in event.plan.legs
    )


class OrdersProjector:
    def __init__(
        self,
        *,
        conninfo: str,
        pool: psycopg_pool.AsyncConnectionPool,
        store: EventStore,
        poll_s: float = 0.1,
        batch: int = 500,
    ) -> None:
        self._conninfo = conninfo
        self._pool = pool
        self._store = store
        self._checkpoints = Checkpoints(pool)
        self._poll_s = poll_s
        self._batch = batch
        self.position = 0

    async def run(self) -> None:
        while True:
            try:
                async with leadership(self._conninfo, PROJECTION_LOCK_KEY) as session:
                    await self._project_forever(session)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception(
                    "projector stopped; retrying", extra={"kind": "projector_error"}
                )
            await asyncio.sleep(1.0)

    async def _project_forever(
        self, session: psycopg.AsyncConnection[tuple[object, ...]]
    ) -> None:
        async with StoreWakeups(self._conninfo) as wakeups:
            self.position = await self._checkpoints.get(PROJECTION)
            while True:
                batch = await self._store.read_all(self.position, self._batch)
                if not batch:
                    await still_leader(session)
                    await wakeups.wait(self._poll_s)
                    continue
                await self._apply(batch)
                self.position = batch[-1].global_position

    async def _apply(self, batch: Sequence[EventEnvelope]) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            async with conn.cursor() as cursor:
                for envelope in batch:
                    query, params = _row(envelope)
                    await cursor.execute(query, params)
            await self._checkpoints.advance(
                PROJECTION, batch[-1].global_position, conn=conn
            )


class OrdersView:
    """Queries on the read model."""

    def __init__(self, pool: psycopg_pool.AsyncConnectionPool) -> None:
        self._pool = pool

    async def recent(self, *, status: str | None, limit: int) -> list[dict[str, Any]]:
        async with (
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            await cur.execute(
                "SELECT * FROM gateway.orders_view"
                " WHERE (%(status)s::text IS NULL OR status = %(status)s)"
                " ORDER BY created_at DESC LIMIT %(limit)s",
                {"status": status, "limit": limit},
            )
            return await cur.fetchall()
