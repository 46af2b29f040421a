"""The relay records how far it published: only confirmed positions, not per batch."""

import asyncio
from collections.abc import Sequence
from typing import Any

from shared.domain.envelope import EventEnvelope
from shared.eventstore.memory import InMemoryEventStore
from shared.eventstore.port import RawEvent
from shared.messaging.relay import Relay
from shared.messaging.topology import Topology
from shared.settings import Settings
from tests.unit.order_events import recorded


class Exchange:
    """Confirms every publish, or refuses them all while ``down``."""

    def __init__(self) -> None:
        self.published: list[int] = []
        self.down = False

    async def publish(self, message: Any, *, routing_key: str, mandatory: bool) -> None:
        if self.down:
            raise ConnectionError("broker gone")
        self.published.append(message.headers["global-position"])


class Checkpoints:
    def __init__(self) -> None:
        self.advances: list[int] = []
        self.failures = 0

    async def advance(self, subscriber: str, position: int, **_: Any) -> bool:
        if self.failures:
            self.failures -= 1
            raise OSError("store briefly away")
        self.advances.append(position)
        return True


def relay(checkpoints: Checkpoints, exchange: Exchange) -> Relay:
    made = Relay(
        settings=Settings(_env_file=None, relay_checkpoint_ms=50),
        store=InMemoryEventStore(),
        checkpoints=checkpoints,  # type: ignore[arg-type]
        topology=Topology("test"),
    )
    made._exchange = exchange  # type: ignore[assignment]
    return made


async def publish(relay: Relay, batch: Sequence[EventEnvelope]) -> None:
    await relay._publish_batch([RawEvent.of(e) for e in batch])


async def test_batches_in_quick_succession_record_one_checkpoint_at_the_last() -> None:
    checkpoints, exchange = Checkpoints(), Exchange()
    subject = relay(checkpoints, exchange)

    for position in range(1, 11):
        await publish(subject, [recorded(position)])
    await asyncio.sleep(0.2)

    assert exchange.published == list(range(1, 11))
    # Coalesced, ending at the last: a slow moment may let one through early.
    assert checkpoints.advances[-1] == 10
    assert len(checkpoints.advances) <= 2, checkpoints.advances


async def test_a_batch_that_failed_to_publish_is_never_checkpointed() -> None:
    checkpoints, exchange = Checkpoints(), Exchange()
    subject = relay(checkpoints, exchange)
    await publish(subject, [recorded(1), recorded(2)])
    exchange.down = True

    try:
        await publish(subject, [recorded(3)])
    except* ConnectionError:
        pass
    await asyncio.sleep(0.2)

    assert checkpoints.advances == [2]


async def test_a_checkpoint_the_store_refused_is_written_later() -> None:
    checkpoints, exchange = Checkpoints(), Exchange()
    checkpoints.failures = 2
    subject = relay(checkpoints, exchange)

    await publish(subject, [recorded(1)])
    await asyncio.sleep(0.4)

    assert checkpoints.advances == [1]


class SlowCheckpoints(Checkpoints):
    """Each write waits until the test lets it finish."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = asyncio.Event()
        self.finish = asyncio.Event()

    async def advance(self, subscriber: str, position: int, **_: Any) -> bool:
        self.writing.set()
        await self.finish.wait()
        return await super().advance(subscriber, position)


async def test_a_batch_confirmed_during_a_checkpoint_write_is_written_next() -> None:
    """The log then goes quiet: the checkpoint must still reach the last batch."""
    checkpoints, exchange = SlowCheckpoints(), Exchange()
    subject = relay(checkpoints, exchange)
    await publish(subject, [recorded(1)])
    await checkpoints.writing.wait()

    await publish(subject, [recorded(2)])
    checkpoints.finish.set()
    await asyncio.sleep(0.3)

    assert checkpoints.advances == [1, 2]
