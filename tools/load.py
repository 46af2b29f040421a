"""Drive orders through a running system the way clients do, and record what they see.

Each order is submitted over HTTP (retried with the same ``clientOrderId`` while the
gateway is unreachable, so a retry can never create a second order) and followed
over WebSocket by a subscriber that may connect late and may drop and resume with
``?after=<version>``, possibly on another notifier replica. Every frame is kept, so
gaps, duplicates and disorder can be counted afterwards.
"""

import asyncio
import itertools
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
import websockets

from orders_cli.client import retry_after_seconds

TERMINAL = frozenset({"confirmed", "failed"})
STATUSES = ("pending", "routing", "building", "submitted", "confirmed", "failed")


@dataclass
class Frame:
    version: int
    status: str
    at: float  # monotonic seconds when the client received it
    connection: int
    # For push latency (same machine clock): when the client received the frame
    # and the frame's own server ``at`` (the event's recorded_at), both Unix seconds.
    received_wall: float | None = None
    server_at: float | None = None
    type: str | None = None  # the event type behind the status


@dataclass
class OrderRun:
    """One order as a client saw it."""

    index: int
    client_order_id: str
    submitted_at: float = 0.0
    admitted_post_at: float | None = None  # when the POST that was accepted was sent
    accepted_at: float | None = None
    order_id: str | None = None
    frames: list[Frame] = field(default_factory=list)
    connections: int = 0
    reconnects: int = 0
    refused: str | None = None
    unavailable: int = 0  # 503 answers before acceptance (at capacity, store down)

    @property
    def terminal(self) -> str | None:
        for frame in reversed(self.frames):
            if frame.status in TERMINAL:
                return frame.status
        return None

    def first_seen(self, status: str) -> float | None:
        return next((f.at for f in self.frames if f.status == status), None)

    def anomalies(self) -> dict[str, int]:
        """Gaps, duplicates and disorder in the versions this client received."""
        versions = [f.version for f in self.frames]
        duplicates = len(versions) - len(set(versions))
        out_of_order = sum(1 for a, b in itertools.pairwise(versions) if b < a)
        expected = set(range(1, max(versions, default=0) + 1))
        gaps = len(expected - set(versions))
        return {"gap": gaps, "duplicate": duplicates, "out_of_order": out_of_order}


@dataclass(frozen=True)
class LoadPlan:
    orders: int
    rate: float | None = None  # orders started per second; None = closed loop
    concurrency: int = 50  # closed loop: orders in flight at most
    body: dict[str, Any] = field(
        default_factory=lambda: {"amount": 1, "tokenPair": "SOL-USDC", "type": "market"}
    )
    # Sides taken in turn, order by order: ("sell", "buy") is two-sided flow that
    # leaves the pools where the market puts them; empty keeps the body's side.
    sides: tuple[str, ...] = ()
    late_connect_s: float = 0.0  # subscribers connect after U(0, late_connect_s)
    resume_share: float = 0.0  # share of subscribers that drop and resume mid-stream
    timeout_s: float = 120.0  # per order, submit to terminal
    run_id: str = "load"
    seed: int = 1


class Load:
    def __init__(
        self, *, api_urls: Sequence[str], ws_urls: Sequence[str], plan: LoadPlan
    ) -> None:
        self._api_urls = [url.rstrip("/") for url in api_urls]
        self._ws_urls = list(ws_urls)
        self._plan = plan
        self._rng = random.Random(plan.seed)
        self.runs: list[OrderRun] = []
        self.started_at = 0.0
        self.finished_at = 0.0

    async def run(self) -> list[OrderRun]:
        plan = self._plan
        self.started_at = time.monotonic()
        # aiohttp rather than httpx: on the engine's own cores, httpx spent 1.9 ms
        # of CPU per POST one at a time and 4.6-6.2 ms at 32-64 at once; aiohttp
        # 0.24-0.39 ms (docs/benchmarks.md, Round 6).
        # Open loop, every order is a client of its own, with its own connection:
        # a shared cap would queue POSTs here (while the gateway holds some for
        # room) and count the load generator's queue as the engine's time.
        connections = 0 if plan.rate is not None else plan.concurrency + 10
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections),
            # Per phase, as a client library's timeout usually is: waiting for a
            # free connection is the load generator's own queue, not the server.
            timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_read=10),
        ) as http:
            gate = asyncio.Semaphore(plan.concurrency)
            tasks = []
            for index in range(plan.orders):
                run = OrderRun(index, f"{plan.run_id}-{index}")
                self.runs.append(run)
                if plan.rate is not None:
                    due = self.started_at + index / plan.rate
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    tasks.append(asyncio.create_task(self._one(http, run)))
                else:
                    await gate.acquire()
                    task = asyncio.create_task(self._one(http, run))
                    task.add_done_callback(lambda _t: gate.release())
                    tasks.append(task)
            await asyncio.gather(*tasks)
        self.finished_at = time.monotonic()
        return self.runs

    async def _one(self, http: aiohttp.ClientSession, run: OrderRun) -> None:
        try:
            async with asyncio.timeout(self._plan.timeout_s):
                await self._submit(http, run)
                if run.order_id is not None:
                    await self._follow(run)
        except TimeoutError:
            pass

    async def _submit(self, http: aiohttp.ClientSession, run: OrderRun) -> None:
        body = {**self._plan.body, "clientOrderId": run.client_order_id}
        if self._plan.sides:
            body["side"] = self._plan.sides[run.index % len(self._plan.sides)]
        run.submitted_at = time.monotonic()
        delay = 0.05
        gateway = run.index  # orders go to the gateways in turn
        while True:
            sent = time.monotonic()
            url = self._api_urls[gateway % len(self._api_urls)]
            retry_after: float | None = None
            try:
                async with http.post(
                    f"{url}/api/orders/execute", json=body, allow_redirects=False
                ) as answer:
                    status = answer.status
                    text = (await answer.read()).decode(errors="replace")
                    retry_after = retry_after_seconds(answer.headers)
            except (aiohttp.ClientError, TimeoutError):
                status, text = None, ""
            if status == 503:  # noqa: PLR2004
                run.unavailable += 1
            if status is not None and status < 500:  # noqa: PLR2004
                if status in {200, 202}:
                    run.admitted_post_at = sent
                    run.accepted_at = time.monotonic()
                    run.order_id = json.loads(text)["orderId"]
                else:
                    run.refused = f"{status} {text[:200]}"
                return
            # The gateway is at capacity, down or restarting: the same
            # clientOrderId makes the retry safe, whether or not the first attempt
            # was recorded, and a client with several gateways tries the next one.
            # A 503 says when to come back; a little jitter keeps the clients that
            # got it together from all coming back at once.
            if retry_after is not None:
                await asyncio.sleep(retry_after * self._rng.uniform(1.0, 1.2))
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            gateway += 1

    async def _follow(self, run: OrderRun) -> None:
        plan = self._plan
        if plan.late_connect_s:
            await asyncio.sleep(self._rng.uniform(0, plan.late_connect_s))
        drop_after = (
            self._rng.randint(1, 4) if self._rng.random() < plan.resume_share else None
        )
        last = 0
        while True:
            ws_url = self._rng.choice(self._ws_urls)
            path = f"{ws_url}/ws/orders/{run.order_id}?after={last}"
            run.connections += 1
            connection = run.connections
            received_count = 0
            try:
                async with websockets.connect(path, open_timeout=5) as ws:
                    async for message in ws:
                        received_wall = time.time()
                        received = time.monotonic()
                        frame = json.loads(message)
                        if "error" in frame:
                            break
                        run.frames.append(
                            Frame(
                                frame["version"],
                                frame["status"],
                                received,
                                connection,
                                received_wall=received_wall,
                                server_at=server_time(frame.get("at")),
                                type=frame.get("type"),
                            )
                        )
                        last = max(last, frame["version"])
                        received_count += 1
                        if frame["status"] in TERMINAL:
                            return
                        if drop_after is not None and received_count >= drop_after:
                            drop_after = None
                            break  # drop mid-stream on purpose, resume below
            except (OSError, websockets.WebSocketException, TimeoutError):
                pass  # the notifier went away: resume from the last version seen
            if run.terminal is not None:
                return
            run.reconnects += 1
            await asyncio.sleep(0.1)


def server_time(at: object) -> float | None:
    """A frame's ISO-8601 ``at`` as Unix seconds (None when absent or malformed)."""
    if not isinstance(at, str):
        return None
    try:
        return datetime.fromisoformat(at).timestamp()
    except ValueError:
        return None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by nearest rank, or None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
