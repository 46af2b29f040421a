"""Re-driving parked messages: nothing leaves parking without a queue to go to."""

import asyncio

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractQueue

from shared.messaging.redrive import redrive
from shared.messaging.topology import Topology

pytestmark = pytest.mark.integration


async def _parked_again(channel: AbstractChannel, name: str) -> AbstractQueue:
    """The parking queue once it counts the message back.

    A quorum queue applies a requeue through its log: a count read at once can
    still miss the message that is on its way back.
    """
    async with asyncio.timeout(10):
        while True:
            queue = await channel.declare_queue(name, passive=True)
            if queue.declaration_result.message_count == 1:
                return queue
            await asyncio.sleep(0.05)


async def _park(
    channel: AbstractChannel, namespace: str, *, parked_by: str
) -> AbstractQueue:
    """The parking queue, holding one message the queue ``parked_by`` parked."""
    parking = await channel.declare_queue(
        Topology(namespace).parking.name,
        durable=True,
        arguments={"x-queue-type": "quorum"},
    )
    await channel.default_exchange.publish(
        aio_pika.Message(
            b'{"type": "OrderAccepted"}',
            headers={"x-death": [{"queue": parked_by, "reason": "rejected"}]},
        ),
        routing_key=parking.name,
    )
    return parking


async def test_a_message_whose_queue_is_gone_stays_parked(
    amqp_url: str, broker_namespace: str
) -> None:
    """A notifier replica's queue goes with the replica. Its parked copies have
    nowhere to go back to: moved anyway, the broker would drop them."""
    namespace = f"{broker_namespace}-redrive-orphan"
    gone = f"{namespace}.notifier.replica-that-left"
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        parking = await _park(channel, namespace, parked_by=gone)

        done = await redrive(amqp_url, namespace)

        left = await _parked_again(channel, parking.name)
        await left.delete(if_unused=False, if_empty=False)

    assert done.moved == {}
    assert done.orphaned == {gone: 1}


async def test_a_message_its_full_queue_refuses_stays_parked(
    amqp_url: str, broker_namespace: str
) -> None:
    """A work queue at its length limit with reject-publish nacks the copy: the
    message stays parked, reported by queue, for a re-drive once there is room."""
    namespace = f"{broker_namespace}-redrive-full"
    full = f"{namespace}.router"
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        work = await channel.declare_queue(
            full,
            durable=True,
            arguments={"x-max-length": 0, "x-overflow": "reject-publish"},
        )
        parking = await _park(channel, namespace, parked_by=full)

        done = await redrive(amqp_url, namespace)

        left = await _parked_again(channel, parking.name)
        await left.delete(if_unused=False, if_empty=False)
        await work.delete(if_unused=False, if_empty=False)

    assert done.moved == {}
    assert done.refused == {full: 1}
    assert done.orphaned == {}
    assert done.kept == 0
