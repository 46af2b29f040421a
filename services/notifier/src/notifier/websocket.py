"""WebSocket endpoints: one order's events, or every order's (the firehose).

On connect a subscriber first gets the recorded history after its cursor, then the
live events, with no gap and no duplicate: the live subscription is registered
before the (last of the) history is read, and anything at or below the cursor is
skipped.
``/ws/orders/{id}?after=<version>`` resumes one order; ``/ws/orders?after=<position>``
resumes the firehose. A per-order stream closes normally after the terminal status.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from uuid import UUID

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.types import Message

from notifier.hub import Hub, SlowSubscriberError, Subscription, readable
from shared.domain.envelope import EventEnvelope
from shared.domain.events import TERMINAL_STATUSES
from shared.domain.views import status_frame
from shared.eventstore.port import EventStore, UnreadableStreamError
from shared.metrics import WEBSOCKET_CONNECTIONS, WEBSOCKET_FRAMES
from shared.postgres.connections import STORE_UNAVAILABLE_ERRORS

logger = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN = 1013  # fell behind, or the store is away: reconnect with ?after=
CLOSE_BAD_REQUEST = 4400  # malformed order id or cursor
CLOSE_UNKNOWN_ORDER = 4404
CLOSE_TIMEOUT_S = 5.0  # the close frame queues behind what the client has not read
# How long a push with an overflow to take up may go without sending a frame before
# its client counts as one that stopped reading.
TAKE_UP_S = 5.0
MAX_CURSOR_DIGITS = 18  # below 2**63: positions and versions are bigint
_CATCH_UP_BATCH = 1000


ORDER = "order"
FIREHOSE = "firehose"


class _Frames:
    """Each event's frame, encoded once however many subscribers get it.

    Kept as the ASGI message itself, so sending it to another subscriber builds
    nothing. Holds the most recent events only: a subscriber catching up from the
    store gets frames encoded again, which is rare and cheap next to the live
    fan-out.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._messages: dict[UUID, Message] = {}

    def message(self, envelope: EventEnvelope) -> Message:
        message = self._messages.get(envelope.event_id)
        if message is None:
            text = orjson.dumps(status_frame(envelope)).decode()
            message = {"type": "websocket.send", "text": text}
            self._messages[envelope.event_id] = message
            if len(self._messages) > self._capacity:
                del self._messages[next(iter(self._messages))]  # the oldest
        return message


_FRAMES = _Frames()


_SENT = {kind: WEBSOCKET_FRAMES.labels(kind) for kind in (ORDER, FIREHOSE)}


async def _send(ws: WebSocket, envelope: EventEnvelope) -> None:
    await ws.send(_FRAMES.message(envelope))


async def _refuse(ws: WebSocket, code: int, message: str, order_id: str) -> None:
    """An error frame, then the close; ``order_id`` is empty on the firehose."""
    await ws.send_text(orjson.dumps({"error": message, "orderId": order_id}).decode())
    _SENT[ORDER if order_id else FIREHOSE].inc()
    await ws.close(code=code, reason=message)


async def _drain_client(ws: WebSocket) -> None:
    """Read (and ignore) what the client sends; return when it goes away."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return


async def _until_client_leaves(
    ws: WebSocket, pushing: "asyncio.Task[None]", subscription: Subscription
) -> None:
    """Run until the push ends, the client leaves, or the client stops reading.

    A client that stops reading fills its buffer and its push, blocked on a full
    socket, never takes the overflow up: it is then closed with 1013 out of band
    and resumes with ?after=. One that never reads again never takes the close,
    and closing the connection waits for what it has not read: the kernel resets
    it instead, once its window has been shut for WS_STALLED_CLIENT_TIMEOUT_S (see
    shared.service.app.serve).
    """
    reading = asyncio.create_task(_drain_client(ws))
    try:
        stalled = await _until_done_or_stalled(pushing, reading, subscription)
    finally:
        # Also when this is cancelled (a shutdown): an orphaned push could
        # attach its subscription again after the endpoint let go of it.
        for task in (pushing, reading):
            task.cancel()
        outcomes = await asyncio.gather(pushing, reading, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(
            outcome, asyncio.CancelledError | WebSocketDisconnect | RuntimeError
        ):
            raise outcome
    if stalled:
        await _close(ws, CLOSE_TRY_AGAIN, _fell_behind(subscription.sent_through))


async def _until_done_or_stalled(
    pushing: "asyncio.Task[None]",
    reading: "asyncio.Task[None]",
    subscription: Subscription,
) -> bool:
    """False once the push ends or the client leaves; True once the push, with an
    overflow to take up, has sent nothing for ``TAKE_UP_S``.

    A push that is sending takes an overflow up when it next asks for events (the
    firehose's catches up from the log and rejoins); a burst does that to any
    client, however fast it reads, and a slow link may take long to drain the
    buffer first, but it goes on sending. Only one stuck on a client that reads
    nothing stops; one waiting on the store (its turn to read, a slow answer) is
    not waiting on its client.
    """
    while True:
        overflowing = asyncio.create_task(subscription.overflow.wait())
        done, _ = await asyncio.wait(
            {pushing, reading, overflowing}, return_when=asyncio.FIRST_COMPLETED
        )
        overflowing.cancel()
        if pushing in done or reading in done:
            return False
        rejoining = asyncio.create_task(subscription.rejoined.wait())
        try:
            while True:
                sent_through = subscription.sent_through
                done, _ = await asyncio.wait(
                    {pushing, reading, rejoining},
                    timeout=TAKE_UP_S,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if pushing in done or reading in done:
                    return False
                if rejoining in done:
                    break
                if (
                    subscription.sent_through == sent_through
                    and not subscription.reading_store
                ):
                    return True  # not one frame sent in TAKE_UP_S
        finally:
            rejoining.cancel()


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    """Close, bounded: the close frame queues behind what the client has not read."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(code=code, reason=reason), CLOSE_TIMEOUT_S)


async def _store_unavailable(
    ws: WebSocket, sent_through: int, error: Exception
) -> None:
    """The store went away under a connect, a hole's re-read or a catch-up: the
    client resumes once it is back, as after falling behind."""
    logger.warning(
        "closing a WebSocket: the event store is unavailable",
        extra={"kind": "store_unavailable"},
        exc_info=error,
    )
    await _close(
        ws,
        CLOSE_TRY_AGAIN,
        f"the event store is unavailable; resume with ?after={sent_through}",
    )


def _fell_behind(sent_through: int) -> str:
    return f"fell behind; resume with ?after={sent_through}"


def _cursor(raw: str | None) -> int | None:
    """``?after=`` as a non-negative integer; raise ValueError for anything else."""
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > MAX_CURSOR_DIGITS:
        raise ValueError("after must be a non-negative integer")
    return int(raw)


def websocket_api(hub: Hub, store: EventStore) -> APIRouter:
    api = APIRouter()

    @api.websocket("/ws/orders/{order_id}")
    async def order_events(ws: WebSocket, order_id: str) -> None:
        await ws.accept()
        with WEBSOCKET_CONNECTIONS.labels(ORDER).track_inprogress():
            await _order_events(ws, hub, store, order_id, ws.query_params.get("after"))

    @api.websocket("/ws/orders")
    async def all_events(ws: WebSocket) -> None:
        await ws.accept()
        with WEBSOCKET_CONNECTIONS.labels(FIREHOSE).track_inprogress():
            await _all_events(ws, hub, store, ws.query_params.get("after"))

    return api


async def _all_events(
    ws: WebSocket, hub: Hub, store: EventStore, raw_after: str | None
) -> None:
    try:
        after = _cursor(raw_after)
    except ValueError as error:
        await _refuse(ws, CLOSE_BAD_REQUEST, str(error), "")
        return
    subscription = hub.subscription(None)  # attached by its push
    subscription.sent_through = hub.watermark if after is None else after
    try:
        if after is not None and after > (head := await store.head_position()):
            await _refuse(
                ws, CLOSE_BAD_REQUEST, f"after={after} is beyond the head {head}", ""
            )
            return
        pushing = asyncio.create_task(_push_firehose(ws, store, hub, subscription))
        await _until_client_leaves(ws, pushing, subscription)
    except STORE_UNAVAILABLE_ERRORS as error:
        await _store_unavailable(ws, subscription.sent_through, error)
    finally:
        hub.unsubscribe(subscription)


async def _order_events(
    ws: WebSocket, hub: Hub, store: EventStore, order_id: str, raw_after: str | None
) -> None:
    try:
        stream = UUID(order_id)
    except ValueError:
        await _refuse(
            ws, CLOSE_BAD_REQUEST, "malformed order id: expected a UUID", order_id
        )
        return
    try:
        after = _cursor(raw_after) or 0
    except ValueError as error:
        await _refuse(ws, CLOSE_BAD_REQUEST, str(error), order_id)
        return
    subscription = hub.subscribe(stream)
    try:
        recorded = await store.read_stream(stream)
        if not recorded:
            await _refuse(ws, CLOSE_UNKNOWN_ORDER, "order not found", order_id)
            return
        last = recorded[-1]
        if after >= last.stream_version and last.status in TERMINAL_STATUSES:
            await ws.close(code=CLOSE_NORMAL)  # nothing left to send, ever
            return
        if after > last.stream_version:
            await _refuse(
                ws,
                CLOSE_BAD_REQUEST,
                f"after={after} is beyond the order's last version"
                f" {last.stream_version}",
                order_id,
            )
            return
        history = [e for e in recorded if e.stream_version > after]
        pushing = asyncio.create_task(
            _push_order(ws, store, subscription, stream, history, after)
        )
        await _until_client_leaves(ws, pushing, subscription)
    except STORE_UNAVAILABLE_ERRORS as error:
        await _store_unavailable(ws, max(after, subscription.sent_through), error)
    except UnreadableStreamError:
        # Unlike the firehose, one order's stream cannot pass an event over:
        # its versions would never be whole again.
        logger.exception(
            "an order's stream holds an event this release cannot read",
            extra={"kind": "unreadable_event", "order_id": order_id},
        )
        await _close(
            ws,
            CLOSE_INTERNAL_ERROR,
            "the order holds an event this release cannot read",
        )
    finally:
        hub.unsubscribe(subscription)


async def _push_order(  # noqa: PLR0917 - private helper of one endpoint
    ws: WebSocket,
    store: EventStore,
    subscription: Subscription,
    stream: UUID,
    history: list[EventEnvelope],
    after: int,
) -> None:
    last = subscription.sent_through = after
    pending = list(history)
    while True:
        hole = False
        for envelope in pending:
            if envelope.stream_version <= last:
                continue
            if envelope.stream_version > last + 1:
                hole = True  # never skip: what lies between comes from the store
                break
            await _send(ws, envelope)
            _SENT[ORDER].inc()
            last = subscription.sent_through = envelope.stream_version
            if envelope.status in TERMINAL_STATUSES:
                await ws.close(code=CLOSE_NORMAL)
                return
        if not hole:
            try:
                pending = await subscription.next()
                continue
            except SlowSubscriberError:
                # What the buffer could not take is in the store; what comes after
                # the read is buffered again, and anything sent twice is skipped.
                subscription.rejoin()
        with subscription.store_read():
            pending = await store.read_stream(stream, after_version=last)


async def _push_firehose(
    ws: WebSocket, store: EventStore, hub: Hub, subscription: Subscription
) -> None:
    """Everything after ``subscription.sent_through``, from the log, then live."""
    sent = _SENT[FIREHOSE]
    while True:
        await _join(ws, store, hub, subscription)
        while True:
            try:
                batch = await subscription.next()
            except SlowSubscriberError:
                # A buffer's worth behind the live events, which a burst (a hole
                # filled at once) does to any client: the log has every one of
                # them, so it is sent from there and joins again, not cut off.
                hub.unsubscribe(subscription)
                subscription.rejoin()
                break
            count = 0
            for envelope in batch:
                if envelope.global_position > subscription.sent_through:
                    await _send(ws, envelope)
                    subscription.sent_through = envelope.global_position
                    count += 1
            sent.inc(count)


async def _join(
    ws: WebSocket, store: EventStore, hub: Hub, subscription: Subscription
) -> None:
    """Send the log after ``subscription.sent_through`` and attach to the live
    events on the way."""
    # Far behind, the log is read before any live event is buffered: under a
    # steady load they would fill the buffer before the catch-up ended, and cut
    # the client off on every resume. Attached once the rest of the catch-up is
    # under half the buffer, the client buffers fewer events than it is sent.
    await _send_stored(
        ws,
        store,
        hub,
        subscription,
        until=lambda: hub.watermark,
        within=subscription.max_buffer // 2,
    )
    hub.attach(subscription)
    catch_up_to = hub.watermark
    await _send_stored(ws, store, hub, subscription, until=lambda: catch_up_to)


async def _send_stored(
    ws: WebSocket,
    store: EventStore,
    hub: Hub,
    subscription: Subscription,
    *,
    until: Callable[[], int],
    within: int = 0,
) -> None:
    """Send the stored events after ``subscription.sent_through`` until no more
    than ``within`` lie between the last one sent and ``until()``."""
    while until() - subscription.sent_through > within:
        with subscription.store_read():
            async with hub.catch_up_reads:
                stored = await store.read_all_raw(
                    subscription.sent_through, limit=_CATCH_UP_BATCH
                )
        if not stored:
            break
        shown = 0
        for event in stored:
            # What the hub passes over, so is the catch-up.
            if (known := readable(event)) is not None:
                await _send(ws, known)
                shown += 1
            subscription.sent_through = event.global_position
        _SENT[FIREHOSE].inc(shown)
