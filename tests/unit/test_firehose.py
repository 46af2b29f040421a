"""The firehose: a client resuming far behind catches up under load and stays live."""

import asyncio
import json
from typing import Any, cast

from fastapi import WebSocket

from notifier.hub import Hub
from notifier.websocket import _push_firehose
from shared.eventstore.memory import InMemoryEventStore
from shared.eventstore.port import RawEvent
from tests.unit.order_events import recorded

BUFFER = 64
HISTORY = 3000


class _BusyLog(InMemoryEventStore):
    """A log of ``HISTORY`` events that goes on growing, each event reaching the hub
    as it is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.raw = [RawEvent.of(recorded(p)) for p in range(1, HISTORY + 1)]
        self.hub = Hub(self, max_buffer=BUFFER, hole_timeout=60)

    def record_one(self) -> None:
        envelope = recorded(len(self.raw) + 1)
        self.raw.append(RawEvent.of(envelope))
        self.hub.offer(envelope)

    async def read_all_raw(
        self, after_position: int = 0, limit: int = 1000
    ) -> list[RawEvent]:
        return self.raw[after_position : after_position + limit]

    async def head_position(self) -> int:
        return len(self.raw)


class _Client:
    """A firehose client; for every 10 frames it is sent, one more event is recorded."""

    def __init__(self, log: _BusyLog) -> None:
        self._log = log
        self.positions: list[int] = []
        self.closed: tuple[int, str | None] | None = None

    async def send(self, message: dict[str, Any]) -> None:
        self.positions.append(json.loads(message["text"])["position"])
        if len(self.positions) % 10 == 0:
            self._log.record_one()
        await asyncio.sleep(0)

    async def close(self, code: int, reason: str | None = None) -> None:
        self.closed = (code, reason)


async def test_a_firehose_far_behind_under_load_catches_up_and_stays_live() -> None:
    """3,000 events behind while events keep coming (300 of them during the
    catch-up, several buffers' worth): it is sent every one, in order, and is
    never cut off for falling behind."""
    log = _BusyLog()
    hub = log.hub
    await hub.start()
    client = _Client(log)
    pushing = asyncio.create_task(
        _push_firehose(
            cast("WebSocket", client), log, hub, hub.subscription(None), after=0
        )
    )

    async def caught_up() -> None:
        while not client.positions or client.positions[-1] < hub.watermark:
            assert not pushing.done(), client.closed
            await asyncio.sleep(0.01)

    await asyncio.wait_for(caught_up(), timeout=10)
    log.record_one()
    await asyncio.wait_for(caught_up(), timeout=10)
    pushing.cancel()

    assert client.closed is None
    assert client.positions == list(range(1, hub.watermark + 1))
    assert hub.watermark > HISTORY + 5 * BUFFER
