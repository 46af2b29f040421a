"""The push to a subscriber: one far behind, or hit by a burst past its buffer,
is sent every event in order and not cut off."""

import asyncio
import dataclasses
import json
from typing import Any, NoReturn, cast
from uuid import UUID, uuid4

import psycopg
import pytest
from fastapi import WebSocket
from fastapi.routing import APIWebSocketRoute

from notifier.hub import Hub
from notifier.websocket import _join, _push_firehose, _push_order, websocket_api
from shared.domain.envelope import NewEvent
from shared.domain.events import OrderEvent, RoutingStarted
from shared.eventstore.memory import InMemoryEventStore
from shared.eventstore.port import NO_STREAM, RawEvent
from tests.unit.order_events import accepted, confirmed, recorded, retry

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
        _push_firehose(cast("WebSocket", client), log, hub, hub.subscription(None))
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


class _QuietLog(_BusyLog):
    """The same log, but sending a frame records nothing more."""

    def record_one(self) -> None:
        pass


async def test_a_burst_past_the_buffer_reaches_a_live_firehose_in_order() -> None:
    """A hole filled at once releases every event held behind it: several buffers'
    worth in one go. A client that keeps reading is sent each of them, in order,
    and is not cut off: what its buffer could not take comes from the log."""
    log = _QuietLog()
    hub = log.hub
    await hub.start()
    client = _Client(log)
    subscription = hub.subscription(None)
    subscription.sent_through = hub.watermark  # connected without ?after=
    pushing = asyncio.create_task(
        _push_firehose(cast("WebSocket", client), log, hub, subscription)
    )
    await asyncio.sleep(0.01)  # attached, waiting for live events
    burst = [recorded(p) for p in range(HISTORY + 1, HISTORY + 5 * BUFFER + 1)]
    log.raw += [RawEvent.of(e) for e in burst]
    for envelope in burst[1:]:
        hub.offer(envelope)  # held: the first of them has not arrived
    hub.offer(burst[0])  # the hole closes; all of them are released at once

    async with asyncio.timeout(10):
        while len(client.positions) < len(burst):
            assert not pushing.done(), client.closed
            await asyncio.sleep(0.01)
    pushing.cancel()

    assert client.closed is None
    assert client.positions == [e.global_position for e in burst]
    assert not subscription.overflowed


class _OrderClient(_Client):
    def __init__(self) -> None:
        self.versions: list[int] = []
        self.closed: tuple[int, str | None] | None = None

    async def send(self, message: dict[str, Any]) -> None:
        self.versions.append(json.loads(message["text"])["version"])
        await asyncio.sleep(0)


async def test_an_order_stream_past_its_buffer_is_sent_whole_then_closed() -> None:
    """An order subscriber's buffer of 2 overflows when the order's retries land
    at once; it is still sent every version, in order, and then the normal close."""
    store = InMemoryEventStore()
    hub = Hub(store, max_buffer=2, hole_timeout=60)
    order = accepted()
    await store.append(order.order_id, _new(order), NO_STREAM)
    await hub.start()
    client = _OrderClient()
    subscription = hub.subscribe(order.order_id)
    pushing = asyncio.create_task(
        _push_order(
            cast("WebSocket", client),
            store,
            subscription,
            order.order_id,
            await store.read_stream(order.order_id),
            0,
        )
    )
    await asyncio.sleep(0.01)  # sent version 1, waiting for live events
    rest = [RoutingStarted(attempt=1)] + [retry(a) for a in range(2, 8)]
    result = await store.append(order.order_id, _new(*rest, confirmed()), 1)
    for envelope in await store.read_stream(order.order_id, after_version=1):
        hub.offer(envelope)

    await asyncio.wait_for(pushing, timeout=10)

    assert client.versions == list(range(1, result.stream_version + 1))
    assert client.closed == (1000, None)


def _new(*events: OrderEvent) -> list[NewEvent]:
    return [NewEvent(event_id=uuid4(), event=e, correlation_id=uuid4()) for e in events]


async def test_a_firehose_catching_up_passes_over_an_event_that_does_not_parse() -> (
    None
):
    """As the hub does: the rest of the log still reaches the client."""
    log = _QuietLog()
    event = log.raw[9]
    envelope = json.loads(event.envelope_json)
    envelope["event"]["attempt"] = "first"
    log.raw[9] = dataclasses.replace(event, envelope_json=json.dumps(envelope))
    hub = log.hub
    await hub.start()
    client = _Client(log)
    pushing = asyncio.create_task(
        _push_firehose(cast("WebSocket", client), log, hub, hub.subscription(None))
    )

    async with asyncio.timeout(10):
        while not client.positions or client.positions[-1] < HISTORY:
            assert not pushing.done(), pushing
            await asyncio.sleep(0.01)
    pushing.cancel()

    assert client.positions == [p for p in range(1, HISTORY + 1) if p != 10]


class _StoreAway(InMemoryEventStore):
    """A store whose every read meets a lost connection."""

    async def read_stream(self, stream: UUID, after_version: int = 0) -> NoReturn:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    async def read_all_raw(
        self, after_position: int = 0, limit: int = 1000
    ) -> NoReturn:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    async def head_position(self) -> NoReturn:
        raise psycopg.OperationalError("server closed the connection unexpectedly")


class _Socket(_OrderClient):
    def __init__(self, after: str) -> None:
        super().__init__()
        self.query_params = {"after": after}

    async def accept(self) -> None:
        pass


@pytest.mark.parametrize("path", ["/ws/orders/{order_id}", "/ws/orders"])
async def test_a_store_outage_closes_with_try_again_naming_the_cursor(
    path: str,
) -> None:
    """Not a dropped connection (1006) and a traceback: 1013, and where to resume."""
    store = _StoreAway()
    hub = Hub(store, hole_timeout=60)
    (endpoint,) = [
        r.endpoint
        for r in websocket_api(hub, store).routes
        if isinstance(r, APIWebSocketRoute) and r.path == path
    ]
    ws = _Socket(after="7")

    if "order_id" in path:
        await endpoint(ws, order_id=str(uuid4()))
    else:
        await endpoint(ws)

    assert ws.closed == (
        1013,
        "the event store is unavailable; resume with ?after=7",
    )


class _CountingLog(_QuietLog):
    """Counts the catch-up reads under way at once."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = self.most_at_once = 0

    async def read_all_raw(
        self, after_position: int = 0, limit: int = 1000
    ) -> list[RawEvent]:
        self.reading += 1
        self.most_at_once = max(self.most_at_once, self.reading)
        await asyncio.sleep(0.001)
        self.reading -= 1
        return await super().read_all_raw(after_position, limit)


async def test_subscribers_catching_up_at_once_take_turns_reading_the_store() -> None:
    """Twenty firehoses resuming from 0 together never hold more than the hub's
    share of the pool: filling a hole must still find a connection."""
    log = _CountingLog()
    hub = Hub(log, max_buffer=BUFFER, catch_up_reads=2)
    await hub.start()
    clients = [_Client(log) for _ in range(20)]

    await asyncio.wait_for(
        asyncio.gather(
            *(
                _join(cast("WebSocket", c), log, hub, hub.subscription(None), 0)
                for c in clients
            )
        ),
        timeout=20,
    )

    assert all(c.positions == list(range(1, HISTORY + 1)) for c in clients)
    assert log.most_at_once == 2
