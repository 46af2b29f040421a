"""Routing an order attempt: quote every venue, choose the best plan, record it.

Triggered by ``OrderAccepted`` (first attempt) and ``RetryScheduled`` (later
attempts, after their back-off). The message is only a trigger: the order's stream
decides whether there is still anything to do.
"""

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from shared.domain.envelope import EventEnvelope
from shared.domain.events import RetryScheduled
from shared.domain.order import (
    awaiting_route,
    decide_attempt_failed,
    decide_route,
    decide_start_routing,
)
from shared.domain.retry import FailureClass, RetryPolicy
from shared.domain.routing import InsufficientLiquidityError
from shared.eventstore.orders import KnownOrder, Orders
from shared.logging import annotate
from shared.venues.port import QuoteUnavailableError
from shared.venues.quoting import Quoting

logger = logging.getLogger(__name__)


class RouteOrders:
    def __init__(
        self,
        *,
        orders: Orders,
        quoting: Quoting,
        policy: RetryPolicy,
    ) -> None:
        self._orders = orders
        self._quoting = quoting
        self._policy = policy

    async def on_order_accepted(self, cause: EventEnvelope) -> None:
        # The first event of a stream is the whole stream as of that version: no
        # read. Anything recorded since (a redelivery) fails the append's expected
        # version, and the decision reloads.
        known = KnownOrder.of([cause]) if cause.stream_version == 1 else None
        order, _ = await self._orders.decide(
            cause.order_id, decide_start_routing, cause=cause, known=known
        )
        if awaiting_route(order.state, 1):
            await self._route(order, cause)

    async def on_retry_scheduled(self, cause: EventEnvelope) -> None:
        retry = cause.event
        assert isinstance(retry, RetryScheduled)  # noqa: S101 - the queue binding guarantees it
        order = await self._orders.read(cause.order_id)
        if order is None or not awaiting_route(order.state, retry.attempt):
            return
        due = cause.recorded_at + timedelta(milliseconds=retry.delay_ms)
        wait = (due - datetime.now(UTC)).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait)
        await self._route(order, cause)

    async def _route(self, order: KnownOrder, cause: EventEnvelope) -> None:
        state = order.state
        attempt = state.attempt
        try:
            quotes, plan = await self._quoting.quote_and_plan(state.spec)
        except QuoteUnavailableError as error:
            await self._fail(order, cause, FailureClass.QUOTE_UNAVAILABLE, str(error))
            return
        except InsufficientLiquidityError as error:
            await self._fail(
                order, cause, FailureClass.INSUFFICIENT_LIQUIDITY, str(error)
            )
            return
        # Decided on the order as routing began (no second read): had anything
        # been recorded since, the append's expected version makes it reload.
        _, recorded = await self._orders.decide(
            state.order_id,
            lambda s: decide_route(s, attempt=attempt, quotes=quotes, plan=plan),
            cause=cause,
            known=order,
        )
        if recorded:
            annotate(attempt=attempt, route=plan.reason)
            logger.debug(
                "route selected",
                extra={
                    "kind": "RouteSelected",
                    "order_id": str(state.order_id),
                    "attempt": attempt,
                    "reason": plan.reason,
                },
            )

    async def _fail(
        self,
        order: KnownOrder,
        cause: EventEnvelope,
        failure: FailureClass,
        reason: str,
    ) -> None:
        state = order.state
        attempt, phase = state.attempt, state.phase
        await self._orders.decide(
            state.order_id,
            lambda s: decide_attempt_failed(
                s,
                attempt=attempt,
                phase=phase,
                failure=failure,
                reason=reason,
                policy=self._policy,
            ),
            cause=cause,
            known=order,
        )
        annotate(attempt=attempt, failure=failure.value, reason=reason)
        logger.debug(
            "attempt failed while routing",
            extra={
                "kind": "AttemptFailed",
                "order_id": str(state.order_id),
                "attempt": attempt,
                "failure": failure,
                "reason": reason,
            },
        )
