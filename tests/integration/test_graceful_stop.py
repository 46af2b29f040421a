"""A service stopping gracefully finishes what it holds and touches nothing else.

Every delivery a stopping consumer takes but does not settle goes back to the
queue marked redelivered, and on a quorum queue counts towards the delivery limit
that parks a message for good. A graceful stop must not add to that count.
"""

import asyncio
import uuid

import aio_pika
import pytest
from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitMessage, RabbitQueue

from shared.service.runtime import make_broker, running
from shared.settings import Settings

pytestmark = pytest.mark.integration

PREFETCH = 2
MESSAGES = 10
HANDLING_S = 0.5


async def _as_message(message: RabbitMessage) -> RabbitMessage:
    return message


async def test_a_graceful_stop_sends_no_delivery_back_redelivered(
    settings: Settings,
) -> None:
    """The deliveries in hand are acknowledged; the rest stay as they were sent."""
    queue = RabbitQueue(
        f"{settings.broker_namespace}.graceful-stop-{uuid.uuid4().hex[:8]}",
        durable=True,
    )
    broker = make_broker(settings, prefetch=PREFETCH)
    handled: list[bytes] = []
    in_hand = asyncio.Event()

    @broker.subscriber(
        queue,
        ack_policy=AckPolicy.MANUAL,
        channel=Channel(prefetch_count=PREFETCH),
        decoder=_as_message,
    )
    async def slow(message: RabbitMessage) -> None:
        in_hand.set()
        await asyncio.sleep(HANDLING_S)
        handled.append(message.body)
        await message.ack()

    async with running(settings, broker):
        await broker.start()
        for number in range(MESSAGES):
            await broker.publish(str(number), queue=queue)
        await asyncio.wait_for(in_hand.wait(), timeout=10)

    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        left = await channel.get_queue(queue.name)
        redelivered = []
        remaining = 0
        while (message := await left.get(no_ack=True, fail=False)) is not None:
            remaining += 1
            if message.redelivered:
                redelivered.append(message.body)
        await left.delete(if_unused=False, if_empty=False)

    assert len(handled) == PREFETCH
    assert remaining == MESSAGES - PREFETCH
    assert redelivered == []
