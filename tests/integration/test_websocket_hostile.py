"""Hostile WebSocket clients: bad ids, bad cursors, garbage frames, slow and many.

Every test talks to the notifier of the session ``system`` the way a real client
would (the ``websockets`` library, or a socket with a tiny receive buffer), and
every wait is bounded.
"""

import asyncio
import base64
import contextlib
import itertools
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.integration import probes
from tests.integration.clients import post_order, stream, submit, wait_for_status
from tests.integration.conftest import WS_STALLED_CLIENT_TIMEOUT_S
from tests.integration.system import System

pytestmark = pytest.mark.integration

ORDER: dict[str, Any] = {"amount": 1, "tokenPair": "SOL-USDC", "type": "market"}
TERMINAL = {"confirmed", "failed"}
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013
CLOSE_BAD_ORDER_ID = 4400
CLOSE_ABNORMAL = 1006
CLOSE_UNKNOWN_ORDER = 4404
REFUSAL_TIMEOUT = 5.0  # seconds a client may wait to learn it was refused


@pytest.fixture(scope="module")
def finished_order(system: System) -> dict[str, Any]:
    """An order that has reached its terminal status."""

    async def place() -> dict[str, Any]:
        answer = await submit(system, ORDER)
        assert answer.status_code == 202, answer.text
        return await wait_for_status(system, answer.json()["orderId"], TERMINAL)

    return asyncio.run(place())


# --- malformed and unknown order ids -----------------------------------------------


@pytest.mark.parametrize(
    "order_id",
    [
        "not-a-uuid",
        "1234",
        "00000000-0000-0000-0000-00000000000g",
        "z" * 1000,
        quote("' OR 1=1 --", safe=""),
        quote("\x00\xff", safe=""),
        quote("<script>alert(1)<script>", safe=""),
    ],
)
async def test_a_malformed_order_id_gets_an_error_frame_and_4400(
    system: System, order_id: str
) -> None:
    """A malformed order id gets one {"error"} frame, then close 4400 with a reason."""
    result = await stream(system, f"/ws/orders/{order_id}", timeout=REFUSAL_TIMEOUT)

    assert result.close_code == CLOSE_BAD_ORDER_ID, result
    assert len(result.frames) == 1, result.frames
    assert "malformed" in result.frames[0]["error"]
    assert result.close_reason


@pytest.mark.parametrize(
    "order_id", [str(uuid.UUID(int=0)), str(uuid.uuid4()), str(uuid.uuid4()).upper()]
)
async def test_an_unknown_order_id_gets_an_error_frame_and_4404(
    system: System, order_id: str
) -> None:
    """A well-formed id of no order gets one {"error"} frame, then close 4404."""
    result = await stream(system, f"/ws/orders/{order_id}", timeout=REFUSAL_TIMEOUT)

    assert result.close_code == CLOSE_UNKNOWN_ORDER, result
    assert len(result.frames) == 1, result.frames
    assert "not found" in result.frames[0]["error"]
    assert result.close_reason


# --- garbage cursors ----------------------------------------------------------------


@dataclass
class Refusal:
    """What a client learns when it connects: an HTTP status or a close frame."""

    http_status: int | None = None
    close_code: int | None = None
    text: str = ""
    frames: list[str] = field(default_factory=list)

    def names_the_problem(self, word: str) -> bool:
        return word in self.text.lower()


async def _connect_and_read(url: str) -> Refusal:
    try:
        async with (
            asyncio.timeout(REFUSAL_TIMEOUT),
            websockets.connect(url) as ws,
        ):
            frames: list[str] = []
            with contextlib.suppress(websockets.ConnectionClosed):
                while True:
                    frames.append(str(await ws.recv()))
            return Refusal(
                close_code=ws.close_code,
                text=(ws.close_reason or "") + "".join(frames),
                frames=frames,
            )
    except websockets.InvalidStatus as error:
        return Refusal(
            http_status=error.response.status_code,
            text=error.response.body.decode(errors="replace")
            if error.response.body
            else "",
        )
    except TimeoutError:
        return Refusal(text="<no answer: neither refused nor closed>")


GARBAGE_CURSORS = ["-1", "x", "1.5", "%00", "9" * 30, str(2**63)]


@pytest.mark.parametrize("after", GARBAGE_CURSORS)
@pytest.mark.parametrize("endpoint", ["order", "firehose"])
async def test_a_garbage_after_cursor_is_refused_clearly(
    system: System, finished_order: dict[str, Any], endpoint: str, after: str
) -> None:
    """A garbage ?after= gets a prompt refusal naming `after`, never silence."""
    path = (
        f"/ws/orders/{finished_order['orderId']}"
        if endpoint == "order"
        else "/ws/orders"
    )
    refusal = await _connect_and_read(f"{system.ws_url}{path}?after={after}")

    refused_by_http = (
        refusal.http_status is not None and 400 <= refusal.http_status < 500
    )
    refused_by_close = refusal.close_code in {CLOSE_POLICY, CLOSE_BAD_ORDER_ID}
    assert refused_by_http or refused_by_close, refusal
    assert refusal.names_the_problem("after"), refusal


@pytest.mark.parametrize("beyond", [0, 1, 1000])
async def test_resuming_a_finished_order_after_its_last_version_closes_normally(
    system: System, finished_order: dict[str, Any], beyond: int
) -> None:
    """?after=<last version> (or later) of a finished order closes 1000 at once."""
    after = finished_order["version"] + beyond
    path = f"/ws/orders/{finished_order['orderId']}?after={after}"
    refusal = await _connect_and_read(system.ws_url + path)

    assert refusal.close_code == CLOSE_NORMAL, refusal
    assert refusal.frames == []


# --- garbage from the client --------------------------------------------------------

GARBAGE_FRAMES: list[str | bytes] = [
    "hello",
    '{"subscribe": "*", "after": -1}',
    "{not json",
    "\x00" * 64,
    b"\xff\xfe\xfd" * 100,
    os.urandom(4096),
    "x" * (1 << 20),  # 1 MiB of text
    os.urandom(1 << 20),  # 1 MiB of binary
    *(["."] * 200),  # a flood of tiny frames
]


async def test_garbage_frames_from_the_client_never_break_its_order_stream(
    system: System,
) -> None:
    """Text, binary, huge and many frames sent by a client leave its stream whole."""
    answer = await submit(system, ORDER)
    assert answer.status_code == 202, answer.text
    order_id = answer.json()["orderId"]
    frames: list[dict[str, Any]] = []
    async with (
        asyncio.timeout(30),
        websockets.connect(
            f"{system.ws_url}/ws/orders/{order_id}", max_size=None
        ) as ws,
    ):
        for garbage in GARBAGE_FRAMES:
            await ws.send(garbage)
        try:
            async for message in ws:
                frames.append(json.loads(message))
                await ws.send(b"\x00garbage between frames")
        except websockets.ConnectionClosed:
            pass
        close_code = ws.close_code

    assert close_code == CLOSE_NORMAL, (close_code, frames)
    assert [f["version"] for f in frames] == list(range(1, len(frames) + 1))
    assert frames[0]["status"] == "pending"
    assert frames[-1]["status"] in TERMINAL


# --- a slow subscriber --------------------------------------------------------------


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture
def tiny_buffer_socket(small_buffer_system: System) -> Iterator[socket.socket]:
    """A TCP socket to the notifier that can hold only a few KiB unread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect
    sock.connect(("127.0.0.1", small_buffer_system.port("notifier")))
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


async def _submit_many(system: System, count: int) -> set[str]:
    async with httpx.AsyncClient(base_url=system.base_url, timeout=10) as client:
        gate = asyncio.Semaphore(20)

        async def one() -> str:
            async with gate:
                answer = await post_order(client, ORDER)
                assert answer.status_code == 202, answer.text
                return str(answer.json()["orderId"])

        return set(await asyncio.gather(*(one() for _ in range(count))))


@dataclass
class Reader:
    """A firehose subscriber that reads everything and notes when each frame came."""

    frames: list[dict[str, Any]] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)

    def finished(self, order_ids: set[str]) -> set[str]:
        return {
            f["orderId"]
            for f in self.frames
            if f["orderId"] in order_ids and f["status"] in TERMINAL
        }

    async def run(self, ws: ClientConnection) -> None:
        async for message in ws:
            frame = json.loads(message)
            self.frames.append(frame)
            recorded = datetime.fromisoformat(frame["at"]).timestamp()
            self.lags.append(time.time() - recorded)


SLOW_ORDERS = 300  # ~1,500 events: more than SMALL_WS_BUFFER and the sockets hold
MAX_RSS_GROWTH_KIB = 100 * 1024


async def test_a_subscriber_that_stops_reading_is_closed_1013_without_stalling_others(
    small_buffer_system: System, tiny_buffer_socket: socket.socket
) -> None:
    """A firehose client that stops reading gets 1013; others stay prompt, RSS flat."""
    notifier_pid = small_buffer_system.processes["notifier"].pid
    rss_before = _rss_kib(notifier_pid)
    async with websockets.connect(
        f"{small_buffer_system.ws_url}/ws/orders",
        sock=tiny_buffer_socket,
        max_queue=1,  # the client library stops reading the socket at once
        ping_interval=None,
    ) as slow:
        reader = Reader()
        async with websockets.connect(
            f"{small_buffer_system.ws_url}/ws/orders"
        ) as fast:
            reading = asyncio.create_task(reader.run(fast))
            await _until_firehose_subscribers(small_buffer_system, 2)

            order_ids = await _submit_many(small_buffer_system, SLOW_ORDERS)
            async with asyncio.timeout(90):
                while reader.finished(order_ids) != order_ids:
                    assert not reading.done(), reading
                    await asyncio.sleep(0.2)
            reading.cancel()
        rss_after = _rss_kib(notifier_pid)

        mine = [f for f in reader.frames if f["orderId"] in order_ids]
        positions = [f["position"] for f in reader.frames]
        assert positions == sorted(set(positions)), (
            "the reader saw a gap or a duplicate"
        )
        assert len({f["orderId"] for f in mine}) == SLOW_ORDERS
        # Stalled behind the slow one, it would wait until the kernel reset that
        # one: WS_STALLED_CLIENT_TIMEOUT_S at least.
        assert max(reader.lags) < WS_STALLED_CLIENT_TIMEOUT_S, (
            f"reader lagged {max(reader.lags):.1f}s"
        )
        assert rss_after - rss_before < MAX_RSS_GROWTH_KIB, (rss_before, rss_after)

        # Now the slow client reads what was left for it: the frames already in the
        # sockets, then its close. It overflowed its buffer, so it was cut off: "try
        # again" (1013, naming the cursor to resume from) behind those frames, or a
        # dropped connection (1006) if it stayed silent past the close timeout. What it
        # got has no gap, and the others never stalled (above).
        got: list[int] = []
        with contextlib.suppress(websockets.ConnectionClosed, TimeoutError):
            async with asyncio.timeout(30):
                while len(got) < len(positions):
                    got.append(json.loads(await slow.recv())["position"])
        seen = f"{len(got)} frames of {len(positions)}; gaps: {_gaps(got)[:5]}"
        assert got == sorted(set(got)), seen
        assert _gaps(got) == [], seen
        assert len(got) < len(positions), f"never cut off: {seen}"
        assert slow.close_code in {CLOSE_TRY_AGAIN, CLOSE_ABNORMAL}, (
            f"slow client ended {slow.close_code} {slow.close_reason!r} after {seen}"
        )
        if slow.close_code == CLOSE_TRY_AGAIN:
            # The cursor named resumes without a gap: at most what the client got.
            reason = slow.close_reason or ""
            assert "after=" in reason, seen
            cursor = reason.rpartition("after=")[2]
            assert cursor.isdigit(), f"no cursor in {reason!r} after {seen}"
            if got:
                assert int(cursor) <= got[-1], (reason, seen)


async def _firehose_subscribers(system: System) -> float:
    return await probes.metric(
        system, "notifier", "oe_websocket_connections", kind="firehose"
    )


async def _until_firehose_subscribers(system: System, count: float) -> None:
    # The notifier counts a connection once it has subscribed it to the hub.
    async with asyncio.timeout(20):
        while await _firehose_subscribers(system) < count:
            await asyncio.sleep(0.05)


def _gaps(positions: list[int]) -> list[tuple[int, int]]:
    """Where consecutive positions jump: (last seen, next seen)."""
    return [(a, b) for a, b in itertools.pairwise(positions) if b != a + 1]


# What the kernel may add to WS_STALLED_CLIENT_TIMEOUT_S: the first zero-window probe
# waits one retransmission timeout (200 ms on loopback), and this test polls.
DROP_SLACK_S = 3.0
ESTABLISHED = "01"
ZERO_WINDOW_PROBE = "04"  # /proc/net/tcp's timer: probing a closed window


@dataclass
class _ServerEnd:
    """The notifier's end of one TCP connection, as /proc/net/tcp shows it."""

    inode: int
    probing: bool  # the client's window is shut: it has read nothing for a while


def _server_end(server_port: int, client_port: int) -> _ServerEnd | None:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state, timer = fields[1], fields[2], fields[3], fields[5]
            if (
                int(local.rpartition(":")[2], 16) == server_port
                and int(remote.rpartition(":")[2], 16) == client_port
                and state == ESTABLISHED
            ):
                return _ServerEnd(
                    inode=int(fields[9]),
                    probing=timer.partition(":")[0] == ZERO_WINDOW_PROBE,
                )
    return None


def _holds_socket(pid: int, inode: int) -> bool:
    """Whether process ``pid`` still has the socket ``inode`` open."""
    target = f"socket:[{inode}]"
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed while we looked
            if str(fd.readlink()) == target:
                return True
    return False


def _firehose_that_never_reads(port: int) -> socket.socket:
    """A firehose connection whose client, once upgraded, reads nothing more."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect
    sock.settimeout(REFUSAL_TIMEOUT)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws/orders HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)  # one at a time: not one byte of a frame is read
        assert byte, f"closed during the handshake: {head!r}"
        head += byte
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


async def _until_dropped(
    pid: int, server_port: int, client_port: int, inode: int
) -> tuple[float, float]:
    """When the notifier's end started probing a shut window, and when it was gone."""
    probing_since = None
    while True:
        end = _server_end(server_port, client_port)
        if end is not None and end.probing and probing_since is None:
            probing_since = time.monotonic()
        if end is None and not _holds_socket(pid, inode):
            assert probing_since is not None, "dropped before its window shut"
            return probing_since, time.monotonic()
        await asyncio.sleep(0.05)


def _read_until_closed(sock: socket.socket) -> tuple[int, str]:
    """The bytes the client can still read, and how its connection ended."""
    received = 0
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return received, "reset"
        except TimeoutError:
            return received, "still open"
        if not data:
            return received, "closed"
        received += len(data)


async def test_a_subscriber_that_never_reads_is_dropped_within_the_stall_timeout(
    small_buffer_system: System,
) -> None:
    """A firehose client that reads nothing and never closes is dropped: within
    WS_STALLED_CLIENT_TIMEOUT_S of its window shutting, the notifier holds no socket
    for it, and the client, after what its own buffer held, finds it reset."""
    system = small_buffer_system
    notifier_pid = system.processes["notifier"].pid
    port = system.port("notifier")
    before = await _firehose_subscribers(system)
    with contextlib.closing(_firehose_that_never_reads(port)) as silent:
        client_port = silent.getsockname()[1]
        await _until_firehose_subscribers(system, before + 1)
        end = _server_end(port, client_port)
        assert end is not None, "the notifier's end of the connection is not listed"
        assert _holds_socket(notifier_pid, end.inode)
        dropping = asyncio.create_task(
            _until_dropped(notifier_pid, port, client_port, end.inode)
        )

        await _submit_many(system, SLOW_ORDERS)
        try:
            async with asyncio.timeout(WS_STALLED_CLIENT_TIMEOUT_S + 10):
                probing_since, dropped_at = await dropping
        except TimeoutError:
            still = _server_end(port, client_port)
            pytest.fail(
                f"never dropped: {still} still established, held by the notifier:"
                f" {_holds_socket(notifier_pid, end.inode)}"
            )
        received, ending = await asyncio.to_thread(_read_until_closed, silent)

    assert dropped_at - probing_since <= WS_STALLED_CLIENT_TIMEOUT_S + DROP_SLACK_S, (
        f"dropped {dropped_at - probing_since:.1f}s after its window shut"
    )
    assert received > 0, "the frames already in the client's socket were lost"
    assert ending in {"reset", "closed"}, f"{ending} after {received} bytes"


# --- many subscribers ---------------------------------------------------------------

MANY = 500
FEW_ORDERS = 3


async def test_five_hundred_firehose_subscribers_each_get_every_event(
    system: System,
) -> None:
    """500 concurrent firehose subscribers each get every event of a few orders."""
    before = await _firehose_subscribers(system)
    gate = asyncio.Semaphore(50)

    async def connect() -> ClientConnection:
        async with gate:
            return await websockets.connect(
                f"{system.ws_url}/ws/orders", open_timeout=20, max_queue=None
            )

    async with asyncio.timeout(30):
        clients = await asyncio.gather(*(connect() for _ in range(MANY)))
    readers = [Reader() for _ in clients]
    tasks = [
        asyncio.create_task(r.run(ws)) for r, ws in zip(readers, clients, strict=True)
    ]
    try:
        await _until_firehose_subscribers(system, before + MANY)
        order_ids = await _submit_many(system, FEW_ORDERS)
        async with asyncio.timeout(60):
            while any(r.finished(order_ids) != order_ids for r in readers):
                await asyncio.sleep(0.2)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)

    for reader in readers:
        for order_id in order_ids:
            versions = [f["version"] for f in reader.frames if f["orderId"] == order_id]
            assert versions == list(range(1, len(versions) + 1)), (order_id, versions)
            assert len(versions) >= 5
