"""How a consumer settles each delivery: ack, retry in place, or park.

Handlers are idempotent, so redelivery is always safe. Infrastructure faults
(database or broker briefly away) are retried in place with back-off, holding the
message, then requeued; anything else is a poison message and is rejected to the
parking queue for a human, never dropped. The event store still holds the event.
"""

import logging
from collections.abc import Awaitable, Callable, Mapping

import psycopg
import psycopg_pool
from faststream import AckPolicy
from faststream.rabbit import (
    Channel,
    RabbitBroker,
    RabbitExchange,
    RabbitMessage,
    RabbitQueue,
)
from faststream.rabbit.annotations import RabbitMessage as RabbitMessageContext
from pydantic import ValidationError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from shared.domain.envelope import EventEnvelope
from shared.eventstore.port import WrongExpectedVersionError

logger = logging.getLogger(__name__)

TRANSIENT: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg_pool.PoolTimeout,
    ConnectionError,
    TimeoutError,
    WrongExpectedVersionError,
)

Handler = Callable[[EventEnvelope], Awaitable[None]]


async def settle(
    message: RabbitMessage, handler: Handler, *, patience_s: float = 120.0
) -> None:
    try:
        envelope = EventEnvelope.model_validate_json(message.body)
    except ValidationError:
        logger.exception("undecodable message parked", extra={"kind": "poison"})
        await message.reject()
        return
    try:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(TRANSIENT),
            wait=wait_exponential(multiplier=0.05, max=5),
            stop=stop_after_delay(patience_s),
            reraise=True,
        ):
            with attempt:
                await handler(envelope)
    except TRANSIENT:
        logger.exception(
            "infrastructure still failing; requeued",
            extra={"kind": "requeue", "order_id": str(envelope.order_id)},
        )
        await message.nack(requeue=True)
    except Exception:
        logger.exception(
            "handler failed; message parked",
            extra={"kind": "parked", "order_id": str(envelope.order_id)},
        )
        await message.reject()
    else:
        await message.ack()


def subscribe(
    broker: RabbitBroker,
    queue: RabbitQueue,
    handlers: Mapping[str, Handler],
    *,
    prefetch: int,
    exchange: RabbitExchange | None = None,
) -> None:
    """Consume ``queue``, dispatching each event type to its handler.

    Deliveries run concurrently up to ``prefetch``; each is settled by ``settle``.
    Event types without a handler are acknowledged and ignored.
    """
    dispatch = dict(handlers)

    async def handle(envelope: EventEnvelope) -> None:
        handler = dispatch.get(envelope.type)
        if handler is not None:
            await handler(envelope)

    @broker.subscriber(
        queue,
        exchange,
        ack_policy=AckPolicy.MANUAL,
        channel=Channel(prefetch_count=prefetch),
    )
    async def on_message(message: RabbitMessageContext) -> None:
        await settle(message, handle)
