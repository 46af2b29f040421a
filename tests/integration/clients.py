"""Small clients that talk to a running system the way a user's program would."""

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets

from tests.integration.system import System


@dataclass
class Stream:
    frames: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""

    @property
    def statuses(self) -> list[str]:
        return [f["status"] for f in self.frames]


async def submit(
    system: System,
    body: dict[str, Any],
    *,
    wait_for_room: bool = True,
    **kwargs: Any,
) -> httpx.Response:
    """POST the order; the answer.

    A well-behaved client waits out the 503 of an engine at capacity (nothing was
    recorded; ``Retry-After-Ms`` says when room is likely) and sends the order
    again, so tests about other things see their orders accepted however busy
    the shared system is. ``wait_for_room=False`` returns that 503.
    """
    async with (
        httpx.AsyncClient(base_url=system.base_url, timeout=10) as client,
        asyncio.timeout(120),
    ):
        return await post_order(client, body, wait_for_room=wait_for_room, **kwargs)


async def post_order(
    client: httpx.AsyncClient,
    body: dict[str, Any],
    *,
    wait_for_room: bool = True,
    **kwargs: Any,
) -> httpx.Response:
    while True:
        answer = await client.post("/api/orders/execute", json=body, **kwargs)
        at_capacity = answer.status_code == 503 and "Retry-After-Ms" in answer.headers
        if not (wait_for_room and at_capacity):
            return answer
        await asyncio.sleep(int(answer.headers["Retry-After-Ms"]) / 1000)


async def stream(
    system: System, path: str, *, timeout: float = 30, ws_url: str | None = None
) -> Stream:
    """Read frames until the server closes the WebSocket.

    ``ws_url`` reaches the notifier some other way (a proxy in front of it).
    """
    result = Stream()
    url = (ws_url or system.ws_url) + path
    async with asyncio.timeout(timeout), websockets.connect(url) as ws:
        try:
            async for message in ws:
                result.frames.append(json.loads(message))
        except websockets.ConnectionClosed:
            pass
        result.close_code = ws.close_code
        result.close_reason = ws.close_reason or ""
    return result


async def wait_for_status(
    system: System, order_id: str, statuses: set[str], *, timeout: float = 30
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=system.base_url, timeout=5) as client:
        async with asyncio.timeout(timeout):
            while True:
                order = (await client.get(f"/api/orders/{order_id}")).json()
                if order["status"] in statuses:
                    return order  # type: ignore[no-any-return]
                await asyncio.sleep(0.1)
