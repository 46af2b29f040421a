"""Removing a run's exchanges and queues from RabbitMQ when the run ends.

Every test run, chaos run and benchmark declares its topology under a namespace of
its own. Durable quorum queues outlive their clients, and each is a Raft group:
left behind, hundreds of them slow a small broker down until it stops answering.
"""

import asyncio
import concurrent.futures

import aio_pika

from shared.messaging.topology import Topology


async def _delete(amqp_url: str, namespace: str) -> None:
    topology = Topology(namespace)
    connection = await aio_pika.connect(amqp_url, timeout=10)
    async with connection:
        channel = await connection.channel()
        for queue in (
            topology.router,
            topology.executor,
            topology.parking,
            topology.unrouted,
        ):
            await channel.queue_delete(queue.name)
        for exchange in (
            topology.events,
            topology.unrouted_exchange,
            topology.dead_letters,
        ):
            await channel.exchange_delete(exchange.name)


def delete_namespace(amqp_url: str, namespace: str) -> None:
    """Delete the namespace's queues and exchanges (from sync or async callers)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _delete(amqp_url, namespace)).result(timeout=30)
