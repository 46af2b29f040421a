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
from notifier.websocket import (
    _join,
    _push_firehose,
    _push_order,
    _until_client_leaves,
    websocket_api,
)
from shared.domain.envelope import EventEnvelope, NewEvent
from shared.domain.events import OrderAccepted, OrderEvent, RoutingStarted
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

    async def receive(self) -> dict[str, Any]:
        await asyncio.Event().wait()  # it never sends anything
        raise AssertionError


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
    hub, order = await _hub_of_one_new_order(store)
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


async def _hub_of_one_new_order(
    store: InMemoryEventStore,
) -> tuple[Hub, OrderAccepted]:
    """A hub of subscriber buffers of 2, and an order just accepted in ``store``."""
    hub = Hub(store, max_buffer=2, hole_timeout=60)
    order = accepted()
    await store.append(order.order_id, _new(order), NO_STREAM)
    await hub.start()
    return hub, order


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
                _join(cast("WebSocket", c), log, hub, hub.subscription(None))
                for c in clients
            )
        ),
        timeout=20,
    )

    assert all(c.positions == list(range(1, HISTORY + 1)) for c in clients)
    assert log.most_at_once == 2


class _Reader(_Client):
    """A firehose client that reads ``pace`` seconds per frame, or stops reading
    for good after ``stops_after`` frames."""

    def __init__(
        self, log: _BusyLog, *, pace: float = 0.0, stops_after: int | None = None
    ) -> None:
        super().__init__(log)
        self._pace = pace
        self._stops_after = stops_after

    async def send(self, message: dict[str, Any]) -> None:
        if self._stops_after is not None and len(self.positions) >= self._stops_after:
            await asyncio.Event().wait()  # its socket is full, and stays full
        await asyncio.sleep(self._pace)
        self.positions.append(json.loads(message["text"])["position"])


class _SlowLog(_QuietLog):
    async def read_all_raw(
        self, after_position: int = 0, limit: int = 1000
    ) -> list[RawEvent]:
        await asyncio.sleep(0.3)  # three times TAKE_UP_S below
        return await super().read_all_raw(after_position, limit)


@pytest.mark.parametrize(
    ("log", "client", "cut_off"),
    [
        (_QuietLog, {"stops_after": 10}, True),
        (_QuietLog, {"pace": 0.002}, False),
        (_SlowLog, {}, False),
    ],
    ids=["stops reading", "reads slowly", "waits on a slow store"],
)
async def test_only_a_client_that_stopped_reading_is_cut_off_after_a_burst(
    monkeypatch: pytest.MonkeyPatch,
    log: type[_QuietLog],
    client: dict[str, Any],
    cut_off: bool,
) -> None:
    """A burst past the buffer, then TAKE_UP_S without a frame sent is a client
    that stopped: 1013, naming the cursor. One that goes on reading, however
    slowly, or whose push waits on the store, is sent everything."""
    monkeypatch.setattr("notifier.websocket.TAKE_UP_S", 0.1)
    store = log()
    hub = store.hub
    await hub.start()
    reader = _Reader(store, **client)
    subscription = hub.subscription(None)
    subscription.sent_through = hub.watermark
    ws = cast("WebSocket", reader)
    pushing = asyncio.create_task(_push_firehose(ws, store, hub, subscription))
    watching = asyncio.create_task(_until_client_leaves(ws, pushing, subscription))
    await asyncio.sleep(0.01)  # attached, waiting for live events
    burst = [recorded(p) for p in range(HISTORY + 1, HISTORY + 5 * BUFFER + 1)]
    store.raw += [RawEvent.of(e) for e in burst]
    for envelope in burst:
        hub.offer(envelope)

    async with asyncio.timeout(10):
        while not cut_off and len(reader.positions) < len(burst):
            assert not watching.done(), reader.closed
            await asyncio.sleep(0.01)
        if cut_off:
            await watching
    watching.cancel()

    if cut_off:
        assert reader.closed == (
            1013,
            f"fell behind; resume with ?after={HISTORY + 10}",
        )
    else:
        assert reader.closed is None
        assert reader.positions == [e.global_position for e in burst]


class _SlowStreams(InMemoryEventStore):
    """Reading an order's stream takes three times TAKE_UP_S below."""

    async def read_stream(
        self, stream: UUID, after_version: int = 0
    ) -> list[EventEnvelope]:
        await asyncio.sleep(0.3)
        return await super().read_stream(stream, after_version)


async def test_a_push_waiting_on_the_store_is_not_taken_for_a_stalled_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The order's events keep coming while its push re-reads the stream after an
    overflow: the buffer overflows again, and nothing is sent for longer than
    TAKE_UP_S, but the push waits on the store, not on the client."""
    monkeypatch.setattr("notifier.websocket.TAKE_UP_S", 0.1)
    store = _SlowStreams()
    hub, order = await _hub_of_one_new_order(store)
    client = _OrderClient()
    subscription = hub.subscribe(order.order_id)
    ws = cast("WebSocket", client)
    history = await InMemoryEventStore.read_stream(store, order.order_id)
    pushing = asyncio.create_task(
        _push_order(ws, store, subscription, order.order_id, history, 0)
    )
    watching = asyncio.create_task(_until_client_leaves(ws, pushing, subscription))
    await asyncio.sleep(0.01)  # sent version 1, waiting for live events
    bursts: list[list[OrderEvent]] = [
        [retry(a) for a in range(2, 6)],
        [retry(a) for a in range(6, 10)],
        [*(retry(a) for a in range(10, 13)), confirmed()],
    ]
    for version, events in zip((1, 5, 9), bursts, strict=True):  # each past the buffer
        await store.append(order.order_id, _new(*events), version)
        for envelope in await InMemoryEventStore.read_stream(
            store, order.order_id, after_version=version
        ):
            hub.offer(envelope)
        await asyncio.sleep(0.05)  # the push is inside its slow re-read by now

    await asyncio.wait_for(watching, timeout=10)

    assert client.closed == (1000, None)
    assert client.versions == list(range(1, 14))
