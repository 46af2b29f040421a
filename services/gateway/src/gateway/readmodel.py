"""The order list read model: a projection of the event store into one table.

A leader-elected follower of the store applies each batch of events and advances
its checkpoint in one transaction, so a crash never applies an event twice or skips
one. One gateway replica projects at a time.
"""

from typing import Any

from psycopg.rows import dict_row

from shared.domain.envelope import EventEnvelope
from shared.domain.events import (
    TERMINAL_STATUSES,
    OrderAccepted,
    OrderFailed,
    OrderStatus,
    RetryScheduled,
    RouteSelected,
    RoutingStarted,
    SwapConfirmed,
    TransactionSubmitted,
)
from shared.eventstore.pool import Pool
from shared.eventstore.projection import Statement, TableProjection

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


class OrdersProjection(TableProjection):
    """Keeps ``gateway.orders_view``: one row per order."""

    subscriber = "projection:gateway.orders_view"

    def statements(self, envelope: EventEnvelope) -> list[Statement]:
        return [_row(envelope)]


class OrdersView:
    """Queries on the read model."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def count_in_flight(self) -> tuple[int, int]:
        """Orders neither confirmed nor failed, and the log position that is as of.

        One statement, so one snapshot: the projection commits its rows and its
        checkpoint together, so the count holds exactly the orders at or below
        that position.
        """
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT (SELECT count(*) FROM gateway.orders_view"
                "         WHERE status = ANY(%s)),"
                " coalesce((SELECT position FROM es.checkpoints"
                "            WHERE subscriber = %s), 0)",
                (
                    [s.value for s in OrderStatus if s not in TERMINAL_STATUSES],
                    OrdersProjection.subscriber,
                ),
            )
            row = await cursor.fetchone()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

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
