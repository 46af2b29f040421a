"""WebSocket endpoints: one order's events, or every order's (the firehose).

On connect a subscriber first gets the recorded history after its cursor, then the
live events, with no gap and no duplicate: the live subscription is registered
before the history is read, and anything at or below the cursor is skipped.
``/ws/orders/{id}?after=<version>`` resumes one order; ``/ws/orders?after=<position>``
resumes the firehose. A per-order stream closes normally after the terminal status.
"""

import asyncio
import contextlib
from typing import Annotated
from uuid import UUID

import orjson
from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from notifier.hub import Hub, SlowSubscriberError, Subscription
from shared.domain.envelope import EventEnvelope
from shared.domain.events import TERMINAL_STATUSES
from shared.domain.views import status_frame
from shared.eventstore.port import EventStore

CLOSE_NORMAL = 1000
CLOSE_TRY_AGAIN = 1013  # the client fell behind: reconnect with ?after=
CLOSE_BAD_ORDER_ID = 4400
CLOSE_UNKNOWN_ORDER = 4404


async def _send(ws: WebSocket, envelope: EventEnvelope) -> None:
    await ws.send_text(orjson.dumps(status_frame(envelope)).decode())


async def _refuse(ws: WebSocket, code: int, message: str, order_id: str) -> None:
    await ws.send_text(orjson.dumps({"error": message, "orderId": order_id}).decode())
    await ws.close(code=code, reason=message)


async def _drain_client(ws: WebSocket) -> None:
    """Read (and ignore) what the client sends; return when it goes away."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return


async def _until_client_leaves(ws: WebSocket, pushing: "asyncio.Task[None]") -> None:
    reading = asyncio.create_task(_drain_client(ws))
    done, pending = await asyncio.wait(
        {pushing, reading}, return_when=asyncio.FIRST_COMPLETED
    )
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(
            asyncio.CancelledError, WebSocketDisconnect, RuntimeError
        ):
            await task
    for task in done:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            task.result()


def websocket_api(hub: Hub, store: EventStore) -> APIRouter:
    api = APIRouter()

    @api.websocket("/ws/orders/{order_id}")
    async def order_events(
        ws: WebSocket, order_id: str, after: Annotated[int, Query(ge=0)] = 0
    ) -> None:
        await ws.accept()
        try:
            stream = UUID(order_id)
        except ValueError:
            await _refuse(
                ws, CLOSE_BAD_ORDER_ID, "malformed order id: expected a UUID", order_id
            )
            return
        subscription = hub.subscribe(stream)
        try:
            history = await store.read_stream(stream, after_version=after)
            if not history and not await store.read_stream(stream):
                await _refuse(ws, CLOSE_UNKNOWN_ORDER, "order not found", order_id)
                return
            pushing = asyncio.create_task(
                _push_order(ws, store, subscription, stream, history, after)
            )
            await _until_client_leaves(ws, pushing)
        finally:
            hub.unsubscribe(subscription)

    @api.websocket("/ws/orders")
    async def all_events(
        ws: WebSocket, after: Annotated[int | None, Query(ge=0)] = None
    ) -> None:
        await ws.accept()
        subscription = hub.subscribe(None)
        try:
            pushing = asyncio.create_task(
                _push_firehose(ws, store, hub, subscription, after)
            )
            await _until_client_leaves(ws, pushing)
        finally:
            hub.unsubscribe(subscription)

    return api


async def _push_order(  # noqa: PLR0917 - private helper of one endpoint
    ws: WebSocket,
    store: EventStore,
    subscription: Subscription,
    stream: UUID,
    history: list[EventEnvelope],
    after: int,
) -> None:
    last = after
    pending = list(history)
    while True:
        for envelope in pending:
            if envelope.stream_version <= last:
                continue
            await _send(ws, envelope)
            last = envelope.stream_version
            if envelope.status in TERMINAL_STATUSES:
                await ws.close(code=CLOSE_NORMAL)
                return
        try:
            live = await subscription.next()
        except SlowSubscriberError:
            await ws.close(
                code=CLOSE_TRY_AGAIN, reason=f"fell behind; resume with ?after={last}"
            )
            return
        if live.stream_version > last + 1:
            # Never skip: fetch what lies between from the store.
            pending = await store.read_stream(stream, after_version=last)
        else:
            pending = [live]


async def _push_firehose(
    ws: WebSocket,
    store: EventStore,
    hub: Hub,
    subscription: Subscription,
    after: int | None,
) -> None:
    last = hub.watermark if after is None else after
    catch_up_to = hub.watermark
    while last < catch_up_to:
        batch = await store.read_all(last, limit=1000)
        if not batch:
            break
        for envelope in batch:
            await _send(ws, envelope)
            last = envelope.global_position
    while True:
        try:
            envelope = await subscription.next()
        except SlowSubscriberError:
            await ws.close(
                code=CLOSE_TRY_AGAIN, reason=f"fell behind; resume with ?after={last}"
            )
            return
        if envelope.global_position <= last:
            continue
        await _send(ws, envelope)
        last = envelope.global_position
