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


async def test_a_delivery_that_never_finishes_holds_the_stop_up_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The graceful timeout is waited out once, not once by the consumers' stop
    and again by the broker's: the process is gone within a container's grace."""
    graceful_s = 3.0
    monkeypatch.setattr("shared.service.runtime.GRACEFUL_STOP_S", graceful_s)
    queue = RabbitQueue(
        f"{settings.broker_namespace}.stuck-stop-{uuid.uuid4().hex[:8]}", durable=True
    )
    broker = make_broker(settings, prefetch=1)
    in_hand = asyncio.Event()

    @broker.subscriber(
        queue,
        ack_policy=AckPolicy.MANUAL,
        channel=Channel(prefetch_count=1),
        decoder=_as_message,
    )
    async def stuck(message: RabbitMessage) -> None:
        in_hand.set()
        await asyncio.Event().wait()

    async with running(settings, broker):
        await broker.start()
        await broker.publish("stuck", queue=queue)
        await asyncio.wait_for(in_hand.wait(), timeout=10)
        stopping = asyncio.get_running_loop().time()
    stopped_s = asyncio.get_running_loop().time() - stopping

    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        left = await channel.get_queue(queue.name)
        back = await left.get(no_ack=True, fail=False)
        await left.delete(if_unused=False, if_empty=False)

    assert graceful_s <= stopped_s < 2 * graceful_s - 0.5, stopped_s
    assert back is not None  # nothing is lost
    assert back.body == b"stuck"
