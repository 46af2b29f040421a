"""Re-drive parked messages to the queues that parked them.

A message lands in ``<ns>.parking`` when its handler failed on it (a poison
message, or a defect) or when it outlived the delivery limit. Its order waits
meanwhile: the trigger is parked, not lost, and the store still holds the event.
Once the cause is fixed, an operator re-drives the parking queue:

    python -m shared.messaging.redrive            # every parked message
    python -m shared.messaging.redrive --max 10   # the ten oldest
    make redrive

Each message goes back to the work queue that dead-lettered it (its ``x-death``
header names the queue), not to the exchange, so no other consumer sees it twice.
It is removed from parking only once the broker has confirmed the copy: a crash
in between leaves a duplicate, which the idempotent handlers take as one.
"""

import argparse
import asyncio
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from aiormq.exceptions import ChannelNotFoundEntity, DeliveryError, PublishError

from shared.messaging.topology import Topology
from shared.settings import load_settings

# Headers the broker set while the message was delivered and dead-lettered; the
# copy starts a fresh life in its queue (the delivery limit counts from zero).
_BROKER_HEADERS = ("x-death", "x-first-death", "x-last-death", "x-delivery-count")


def source_queue(message: AbstractIncomingMessage) -> str | None:
    """The queue that dead-lettered ``message`` most recently, if any."""
    deaths = (message.headers or {}).get("x-death")
    if not isinstance(deaths, list) or not deaths:
        return None
    latest = deaths[0]  # the broker keeps the most recent death first
    queue = latest.get("queue") if isinstance(latest, dict) else None
    if isinstance(queue, bytes):
        queue = queue.decode()
    return queue if isinstance(queue, str) and queue else None


def _copy(message: AbstractIncomingMessage) -> aio_pika.Message:
    headers: dict[str, Any] = {
        key: value
        for key, value in (message.headers or {}).items()
        if not key.startswith(_BROKER_HEADERS)
    }
    before = headers.get("x-redriven", 0)
    headers["x-redriven"] = (before if isinstance(before, int) else 0) + 1
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        correlation_id=message.correlation_id,
        message_id=message.message_id,
        timestamp=message.timestamp,
        type=message.type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


@dataclass(frozen=True, slots=True)
class Redriven:
    moved: Counter[str]  # messages moved, by the queue they went back to
    kept: int  # parked by no queue (published to parking by hand): left there
    # Parked by a queue that no longer exists (a notifier replica's, gone with
    # it): left there, by that queue's name. Moving them would lose them.
    orphaned: Counter[str] = field(default_factory=Counter)
    # Refused by their queue (full, with x-overflow reject-publish): left there,
    # by queue, for a re-drive once it has room.
    refused: Counter[str] = field(default_factory=Counter)


async def redrive(
    amqp_url: str, namespace: str, *, most: int | None = None
) -> Redriven:
    """Move parked messages back to their queues, oldest first."""
    moved: Counter[str] = Counter()
    orphaned: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    kept: list[AbstractIncomingMessage] = []
    connection = await aio_pika.connect(amqp_url, timeout=10)
    async with connection:
        # A copy no queue takes comes back (mandatory) as an error, rather than
        # being confirmed as if it had arrived somewhere.
        channel = await connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        parking = await channel.declare_queue(
            Topology(namespace).parking.name, passive=True
        )
        # Only what was parked when the re-drive began: a message that fails again
        # is parked again behind them and waits for the next re-drive.
        waiting = parking.declaration_result.message_count or 0
        try:
            for _ in range(waiting if most is None else min(most, waiting)):
                message = await parking.get(no_ack=False, fail=False)
                if message is None:
                    break
                queue = source_queue(message)
                if queue is None:
                    kept.append(message)
                    continue
                try:
                    await channel.default_exchange.publish(
                        _copy(message), routing_key=queue
                    )
                except PublishError:  # returned: no such queue
                    kept.append(message)
                    orphaned[queue] += 1
                    continue
                except DeliveryError:  # nacked: the queue would not take it
                    kept.append(message)
                    refused[queue] += 1
                    continue
                await message.ack()
                moved[queue] += 1
        finally:
            for message in kept:  # held until now, so the loop moved past them
                await message.nack(requeue=True)
    return Redriven(
        moved, len(kept) - orphaned.total() - refused.total(), orphaned, refused
    )


def _at_least_one(text: str) -> int:
    count = int(text)
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {count}")
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shared.messaging.redrive", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--max",
        type=_at_least_one,
        default=None,
        help="re-drive at most this many (oldest)",
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    try:
        done = asyncio.run(
            redrive(settings.amqp_url, settings.broker_namespace, most=args.max)
        )
    except ChannelNotFoundEntity:
        print(  # noqa: T201 - a command's report
            f"no queue {settings.broker_namespace}.parking at AMQP_URL: has the"
            " system run against this broker with this BROKER_NAMESPACE?",
            file=sys.stderr,
        )
        return 1
    except (OSError, aio_pika.exceptions.AMQPError) as error:
        # Whatever was held goes back to parking with the connection: none is lost.
        where = urlsplit(settings.amqp_url)
        print(  # noqa: T201
            f"the broker at {where.hostname}:{where.port or 5672} failed the"
            f" re-drive: {error!r}; every message not reported moved is still"
            " parked",
            file=sys.stderr,
        )
        return 1
    for queue, count in sorted(done.moved.items()):
        print(f"re-drove {count} to {queue}")  # noqa: T201 - a command's report
    if done.kept:
        print(  # noqa: T201
            f"kept {done.kept} that no queue parked (published to parking directly)"
        )
    for queue, count in sorted(done.refused.items()):
        print(f"kept {count} that {queue} refused (full?): re-drive again later")  # noqa: T201
    for queue, count in sorted(done.orphaned.items()):
        print(f"kept {count} parked by {queue}, which no longer exists")  # noqa: T201
    if not (done.moved or done.kept or done.orphaned or done.refused):
        print("nothing parked")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
