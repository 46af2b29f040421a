"""The order list read model: a projection of the event store into one table.

A leader-elected follower of the store applies each batch of events and advances
its checkpoint in one transaction, so a crash never applies an event twice or skips
one. One gateway replica projects at a time.
"""

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row

from gateway.admission import InFlight
from gateway.paging import ListPlace
from gateway.stalled import NAMED_PER_STATUS, Stalled
from shared.domain.envelope import EventEnvelope
from shared.domain.events import (
    IN_FLIGHT_STATUSES,
    OrderAccepted,
    OrderFailed,
    OrderStatus,
    RetryScheduled,
    RouteSelected,
    RoutingStarted,
    SwapConfirmed,
    TransactionSubmitted,
)
from shared.domain.quotes import RouteLeg
from shared.eventstore.pool import ANSWER_WITHIN_S, Pool
from shared.eventstore.projection import Statement, TableProjection

# An order first seen in a batch is inserted with everything the batch says about
# it; one seen before gets one update per batch, however many of its events the
# batch holds (an order's statuses come milliseconds apart and share batches).
_INSERT = """
INSERT INTO gateway.orders_view
    (order_id, status, token_pair, side, amount, client_order_id, version,
     created_at, updated_at, attempts, venue, tx_hash, final_price, failure_reason)
VALUES (%(order_id)s, %(status)s, %(token_pair)s, %(side)s, %(amount)s,
        %(client_order_id)s, %(version)s, %(created_at)s, %(at)s, %(attempt)s,
        %(venue)s, %(tx_hash)s, %(final_price)s, %(failure_reason)s)
ON CONFLICT (order_id) DO NOTHING
"""

_UPDATE = """
UPDATE gateway.orders_view SET
    status = %(status)s,
    version = %(version)s,
    updated_at = %(at)s,
    attempts = GREATEST(attempts, %(attempt)s),
    venue = CASE WHEN %(retried)s THEN %(venue)s ELSE COALESCE(%(venue)s, venue) END,
    tx_hash = CASE WHEN %(retried)s THEN %(tx_hash)s
                   ELSE COALESCE(%(tx_hash)s, tx_hash) END,
    final_price = COALESCE(%(final_price)s, final_price),
    failure_reason = COALESCE(%(failure_reason)s, failure_reason)
WHERE order_id = %(order_id)s AND version < %(version)s
"""

# Columns an event may set; a later event's value replaces an earlier one, and an
# event that says nothing of a column leaves it as it was.
_LATEST_WINS = ("venue", "tx_hash", "final_price", "failure_reason")
# What the current attempt did, as the order detail shows it: a retry clears them
# until the new attempt routes and sends.
_OF_THE_ATTEMPT = ("venue", "tx_hash")


def _changes(envelope: EventEnvelope) -> dict[str, Any]:
    """What one event says about the order's row."""
    event = envelope.event
    changes: dict[str, Any] = {
        "status": envelope.status.value,
        "version": envelope.stream_version,
        "at": envelope.recorded_at,
        "attempt": 0,
        "retried": False,
    }
    match event:
        case OrderAccepted():
            changes |= {
                "token_pair": event.token_pair,
                "side": event.side.value,
                "amount": event.amount,
                "client_order_id": event.client_order_id,
                "created_at": envelope.recorded_at,
            }
        case RoutingStarted():
            changes["attempt"] = event.attempt
        case RetryScheduled():
            changes |= {"attempt": event.attempt, "retried": True}
        case RouteSelected():
            changes |= {"attempt": event.attempt, "venue": _venues(event.plan.legs)}
        case TransactionSubmitted():
            changes |= {"attempt": event.attempt, "tx_hash": event.signature}
            if event.plan is not None:  # re-quoted: the plan it carries is the one
                changes["venue"] = _venues(event.plan.legs)
        case SwapConfirmed():
            changes |= {
                "attempt": event.attempt,
                "venue": _venues(event.legs),
                "tx_hash": event.tx_hash,
                "final_price": event.final_price,
            }
        case OrderFailed():
            changes |= {"attempt": event.failed_attempt, "failure_reason": event.reason}
    return changes


def _merge(row: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    merged = row | {
        key: value
        for key, value in later.items()
        if value is not None or key not in _LATEST_WINS
    }
    if later["retried"]:
        merged |= dict.fromkeys(_OF_THE_ATTEMPT)
    merged["attempt"] = max(row["attempt"], later["attempt"])
    merged["retried"] = row["retried"] or later["retried"]
    return merged


def _venues(legs: Iterable[RouteLeg]) -> str:
    return " / ".join(f"{leg.venue.value} {leg.bps / 100:g}%" for leg in legs)


class OrdersProjection(TableProjection):
    """Keeps ``gateway.orders_view``: one row per order."""

    subscriber = "projection:gateway.orders_view"

    def statements(self, batch: Sequence[EventEnvelope]) -> list[Statement]:
        rows: dict[UUID, dict[str, Any]] = {}
        for envelope in batch:
            changes = _changes(envelope)
            row = rows.get(envelope.order_id)
            rows[envelope.order_id] = changes if row is None else _merge(row, changes)
        return [
            (
                _INSERT if "created_at" in row else _UPDATE,
                dict.fromkeys(_LATEST_WINS) | row | {"order_id": order_id},
            )
            for order_id, row in rows.items()
        ]


_IN_FLIGHT = [s.value for s in IN_FLIGHT_STATUSES]
# Statuses in which an order waits for the engine itself, not for a venue, a
# back-off or the chain: accepted and not yet taken by a router, or routed and not
# yet sent by an executor.
_WAITING_FOR_ENGINE = [OrderStatus.PENDING.value, OrderStatus.BUILDING.value]
_COUNT_IN_FLIGHT = """
WITH projected AS (
    SELECT coalesce((SELECT position FROM es.checkpoints WHERE subscriber = %s), 0)
           AS position
)
SELECT (SELECT count(*) FROM gateway.orders_view WHERE status = ANY(%s))
       + (SELECT count(*)
            FROM es.events AS e, projected
           WHERE e.global_position > projected.position
             AND e.event_type = 'OrderAccepted'),
       (SELECT last_position FROM es.position_counter),
       (SELECT extract(epoch FROM clock_timestamp() - updated_at)
          FROM gateway.orders_view WHERE status = ANY(%s)
         ORDER BY updated_at LIMIT 1 OFFSET %s)
"""
# The wait admission steers by is the ``_STUCK_IGNORED + 1``-th longest: a few
# orders stuck for good (a parked message) must not hold the limit down forever,
# and a queue worth cutting for is longer than that anyway.
_STUCK_IGNORED = 3


# A row the log has moved past is not stalled, only not projected yet: that shows
# in the projection's lag instead.
_STALLED = """
SELECT v.status, count(*),
       (array_agg(v.order_id ORDER BY v.updated_at, v.order_id))[1:%(named)s],
       extract(epoch FROM clock_timestamp() - min(v.updated_at))
  FROM gateway.orders_view AS v
 WHERE v.status = ANY(%(in_flight)s)
   AND v.updated_at < clock_timestamp() - make_interval(secs => %(after_s)s)
   AND NOT EXISTS (
       SELECT FROM es.events AS e
        WHERE e.stream_id = v.order_id AND e.stream_version > v.version)
 GROUP BY v.status
"""


class OrdersView:
    """Queries on the read model."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def count_in_flight(self) -> InFlight:
        """Orders neither confirmed nor failed, the log position that is as of,
        and the fourth-longest wait for the engine among them.

        The projected orders that are in flight, plus every order accepted after
        the projection's checkpoint, by any gateway, up to the head of the log.
        One statement, so one snapshot: the projection commits its rows and its
        checkpoint together, and the head is committed with the events below it.
        Orders that ended after the checkpoint still count until projected, so
        the count errs towards full, never towards room that is not there; and a
        read model that trails shows waits as long as its lag, so the wait errs
        towards a busy engine, never towards an idle one.
        """
        async with self._pool.connection(answer_within_s=ANSWER_WITHIN_S) as conn:
            cursor = await conn.execute(
                _COUNT_IN_FLIGHT,
                (
                    OrdersProjection.subscriber,
                    _IN_FLIGHT,
                    _WAITING_FOR_ENGINE,
                    _STUCK_IGNORED,
                ),
            )
            row = await cursor.fetchone()
        if row is None:
            return InFlight(0, 0, 0.0)
        return InFlight(int(row[0]), int(row[1]), float(row[2] or 0))

    async def stalled(self, after_s: float) -> list[Stalled]:
        """Orders in flight with nothing recorded for ``after_s``, by status: as
        the read model shows them, less those the log has moved on since."""
        async with self._pool.connection(answer_within_s=ANSWER_WITHIN_S) as conn:
            cursor = await conn.execute(
                _STALLED,
                {
                    "named": NAMED_PER_STATUS,
                    "in_flight": _IN_FLIGHT,
                    "after_s": after_s,
                },
            )
            rows = await cursor.fetchall()
        return [
            Stalled(OrderStatus(status), int(count), list(oldest), float(longest_s))
            for status, count, oldest, longest_s in rows
        ]

    async def recent(
        self,
        *,
        status: str | None,
        limit: int,
        before: ListPlace | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first, after the place ``before`` (a previous page's last row)."""
        created_at, order_id = before if before is not None else (None, None)
        async with (
            self._pool.connection(answer_within_s=ANSWER_WITHIN_S) as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            await cur.execute(
                "SELECT * FROM gateway.orders_view"
                " WHERE (%(status)s::text IS NULL OR status = %(status)s)"
                "   AND (%(created_at)s::timestamptz IS NULL"
                "        OR (created_at, order_id)"
                "           < (%(created_at)s::timestamptz, %(order_id)s::uuid))"
                " ORDER BY created_at DESC, order_id DESC LIMIT %(limit)s",
                {
                    "status": status,
                    "limit": limit,
                    "created_at": created_at,
                    "order_id": order_id,
                },
            )
            return await cur.fetchall()
