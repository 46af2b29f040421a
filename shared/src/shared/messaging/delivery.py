"""How a consumer settles each delivery: ack, retry in place, or park.

Handlers are idempotent, so redelivery is always safe. Infrastructure faults
(the database away) are retried in place with back-off, holding the message, for
as long as they last: every delivery counts toward the queue's delivery limit, so
requeueing through an outage would park the triggers of orders that did nothing
wrong and strand them. Contention that outlasts the patience (another writer
keeps winning the stream) is requeued for another replica. Anything else is a
poison message and is rejected to the parking queue for a human, never dropped.
The event store still holds the event.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import psycopg
import psycopg_pool
import structlog
from faststream import AckPolicy
from faststream.rabbit import (
    Channel,
    RabbitBroker,
    RabbitExchange,
    RabbitMessage,
    RabbitQueue,
)
from faststream.rabbit.subscriber import RabbitSubscriber
from pydantic import ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from shared.domain.envelope import EventEnvelope
from shared.domain.events import EVENT_TYPES
from shared.eventstore.port import WrongExpectedVersionError
from shared.logging import collecting_annotations
from shared.metrics import record_delivery

logger = logging.getLogger(__name__)

TRANSIENT: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    psycopg_pool.PoolTimeout,
    # A failover's demoted primary refuses writes until clients reconnect to
    # the new one: waited out like an outage, not parked.
    psycopg.errors.ReadOnlySqlTransaction,
    ConnectionError,
    TimeoutError,
    WrongExpectedVersionError,
)

Handler = Callable[[EventEnvelope], Awaitable[None]]

ACK = "ack"
REQUEUE = "requeue"
PARKED = "parked"
_FIRST_RETRY_S = 0.05
_LEVEL = {ACK: logging.INFO, REQUEUE: logging.WARNING, PARKED: logging.ERROR}


async def settle(
    message: RabbitMessage,
    handler: Handler,
    *,
    consumer: str = "consumer",
    patience_s: float = 120.0,
) -> None:
    """Handle one delivery and settle it; log exactly one ``handled`` line.

    The order id and correlation id are bound to the logging context while the
    handler runs, so every line it logs carries them too.
    """
    started = time.perf_counter()
    redelivered = bool(getattr(message.raw_message, "redelivered", False))
    try:
        envelope = EventEnvelope.model_validate_json(message.body)
    except ValidationError as undecodable:
        headers = message.headers or {}
        known = {
            "order_id": headers.get("order-id"),
            "correlation_id": message.correlation_id,
        }
        with structlog.contextvars.bound_contextvars(
            **{key: str(value) for key, value in known.items() if value}
        ):
            await message.reject()
            _handled(
                consumer,
                _known_type(_raw_type(message)),
                PARKED,
                started,
                redelivered=redelivered,
                parked_reason="undecodable",
                error=undecodable,
            )
        return
    with (
        structlog.contextvars.bound_contextvars(
            order_id=str(envelope.order_id),
            correlation_id=str(envelope.correlation_id),
            event_id=str(envelope.event_id),
        ),
        collecting_annotations() as annotations,
    ):
        error: BaseException | None = None
        try:
            try:
                await handler(envelope)
            except TRANSIENT:
                # Only a delivery that met a fault pays for the retry machinery.
                await _retry(handler, envelope, patience_s)
        except TRANSIENT as transient:
            error, outcome = transient, REQUEUE
            await message.nack(requeue=True)
        except Exception as failure:
            error, outcome = failure, PARKED
            await message.reject()
        else:
            outcome = ACK
            await message.ack()
        _handled(
            consumer,
            envelope.type,
            outcome,
            started,
            redelivered=redelivered,
            parked_reason="handler_error" if outcome == PARKED else None,
            error=error,
            annotations=annotations,
        )


async def _retry(handler: Handler, envelope: EventEnvelope, patience_s: float) -> None:
    """Run the handler again with back-off until it succeeds; give up only on
    contention that outlasts ``patience_s`` (an outage is waited out)."""
    out_of_patience = stop_after_delay(patience_s)

    def give_up(state: RetryCallState) -> bool:
        failure = state.outcome.exception() if state.outcome else None
        return isinstance(failure, WrongExpectedVersionError) and out_of_patience(state)

    await asyncio.sleep(_FIRST_RETRY_S)
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(TRANSIENT),
        wait=wait_exponential(multiplier=_FIRST_RETRY_S, max=5),
        stop=give_up,
        before_sleep=_still_failing,
        reraise=True,
    ):
        with attempt:
            await handler(envelope)


def _still_failing(state: RetryCallState) -> None:
    # Once at the first retry, then every 16th (~80 s apart at the 5 s ceiling).
    if state.attempt_number % 16 == 1:
        failure = state.outcome.exception() if state.outcome else None
        logger.warning(
            "still retrying in place: %s",
            failure,
            extra={"kind": "delivery_retry", "attempt": state.attempt_number},
        )


def _handled(
    consumer: str,
    event_type: str,
    outcome: str,
    started: float,
    *,
    redelivered: bool,
    parked_reason: str | None,
    error: BaseException | None,
    annotations: dict[str, Any] | None = None,
) -> None:
    seconds = time.perf_counter() - started
    record_delivery(
        consumer,
        event_type,
        outcome,
        seconds,
        redelivered=redelivered,
        parked_reason=parked_reason,
    )
    fields: dict[str, Any] = {
        **(annotations or {}),
        "consumer": consumer,
        "event_type": event_type,
        "outcome": outcome,
        "duration_ms": round(seconds * 1000, 1),
    }
    if redelivered:
        fields["redelivered"] = True
    if parked_reason is not None:
        fields["parked_reason"] = parked_reason
    exc_info = (type(error), error, error.__traceback__) if error else None
    logger.log(_LEVEL[outcome], "handled", extra=fields, exc_info=exc_info)


def _raw_type(message: RabbitMessage) -> str | None:
    value = getattr(message.raw_message, "type", None)
    return value if isinstance(value, str) else None


def _known_type(value: object) -> str:
    # A label value must come from a small set, whatever a publisher sends.
    return value if isinstance(value, str) and value in EVENT_TYPES else "unknown"


async def _as_message(message: RabbitMessage) -> RabbitMessage:
    """Hand the handler the message itself: ``settle`` decodes and settles it."""
    return message


def subscribe(
    broker: RabbitBroker,
    queue: RabbitQueue,
    handlers: Mapping[str, Handler],
    *,
    prefetch: int,
    consumer: str,
    exchange: RabbitExchange | None = None,
) -> RabbitSubscriber:
    """Consume ``queue``, dispatching each event type to its handler.

    Deliveries run concurrently up to ``prefetch``; each is settled by ``settle``.
    Event types without a handler are acknowledged and ignored. ``consumer`` names
    the role (``router``, ...) in metrics and logs; the subscriber is returned so
    readiness can check it is attached.
    """
    dispatch = dict(handlers)

    async def handle(envelope: EventEnvelope) -> None:
        handler = dispatch.get(envelope.type)
        if handler is not None:
            await handler(envelope)

    subscriber = broker.subscriber(
        queue,
        exchange,
        ack_policy=AckPolicy.MANUAL,
        channel=Channel(prefetch_count=prefetch),
        decoder=_as_message,
    )

    @subscriber
    async def on_message(message: RabbitMessage) -> None:
        await settle(message, handle, consumer=consumer)

    return subscriber
