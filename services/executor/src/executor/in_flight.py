"""Orders in flight: a transaction recorded, no outcome recorded yet.

A projection of the store the executor reads when it starts, so that every
signature a crashed executor left behind is reconciled against the chain.
"""

from collections.abc import Sequence
from uuid import UUID

from shared.domain.envelope import EventEnvelope
from shared.domain.events import (
    OrderFailed,
    RetryScheduled,
    SwapConfirmed,
    TransactionSubmitted,
)
from shared.eventstore.projection import Statement, TableProjection

_RECORD = """
INSERT INTO executor.in_flight
    (order_id, attempt, signature, last_valid_block_height, submitted_at)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (order_id) DO UPDATE SET
    attempt = excluded.attempt,
    signature = excluded.signature,
    last_valid_block_height = excluded.last_valid_block_height,
    submitted_at = excluded.submitted_at
"""
_SETTLE = "DELETE FROM executor.in_flight WHERE order_id = %s"


class InFlight(TableProjection):
    subscriber = "projection:executor.in_flight"
    # Passed over, one of these would leave a signature unreconciled after a
    # crash, or an order reconciled again after its outcome.
    requires = frozenset(
        {"TransactionSubmitted", "SwapConfirmed", "RetryScheduled", "OrderFailed"}
    )

    def statements(self, batch: Sequence[EventEnvelope]) -> list[Statement]:
        return [
            statement for envelope in batch for statement in self._statements(envelope)
        ]

    def _statements(self, envelope: EventEnvelope) -> list[Statement]:
        match envelope.event:
            case TransactionSubmitted() as tx:
                return [
                    (
                        _RECORD,
                        (
                            envelope.order_id,
                            tx.attempt,
                            tx.signature,
                            tx.last_valid_block_height,
                            envelope.recorded_at,
                        ),
                    )
                ]
            case SwapConfirmed() | RetryScheduled() | OrderFailed():
                return [(_SETTLE, (envelope.order_id,))]
        return []

    async def orders(self) -> list[UUID]:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT order_id FROM executor.in_flight ORDER BY submitted_at"
            )
            return [row[0] for row in await cursor.fetchall()]
