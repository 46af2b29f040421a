"""The load generator submits as a well-behaved client: a 503 is waited out as asked."""

import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tools.load import Load, LoadPlan

REFUSALS = {
    "whole seconds": {"Retry-After": "1"},
    "milliseconds": {"Retry-After": "1", "Retry-After-Ms": "300"},
}
WAITS = {"whole seconds": 1.0, "milliseconds": 0.3}


@pytest.fixture(params=list(REFUSALS))
async def gateway(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[str, list[float], float]]:
    """A gateway at capacity once (503 with the headers of ``REFUSALS``), then
    accepting; also yields the wait those headers ask for."""
    posts: list[float] = []
    headers = REFUSALS[request.param]

    async def execute(request: web.Request) -> web.Response:
        posts.append(time.monotonic())
        body = await request.json()
        if len(posts) == 1:
            return web.json_response(
                {"detail": "engine at capacity"},
                status=503,
                headers=headers,
            )
        return web.json_response(
            {"orderId": f"order-for-{body['clientOrderId']}"}, status=202
        )

    async def follow(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for version, status in enumerate(("pending", "confirmed"), start=1):
            await ws.send_json({"version": version, "status": status})
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_post("/api/orders/execute", execute)
    app.router.add_get("/ws/orders/{order_id}", follow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", posts, WAITS[request.param]
    finally:
        await runner.cleanup()


async def test_a_503_is_retried_after_the_time_it_names(
    gateway: tuple[str, list[float], float],
) -> None:
    """``Retry-After-Ms`` where sent (the gateway at capacity), else
    ``Retry-After``."""
    url, posts, wait = gateway
    load = Load(
        api_urls=[url],
        ws_urls=[url.replace("http", "ws")],
        plan=LoadPlan(orders=1, run_id="client"),
    )

    [run] = await load.run()

    assert run.unavailable == 1
    assert run.order_id == "order-for-client-0"
    assert run.refused is None
    assert [frame.status for frame in run.frames] == ["pending", "confirmed"]
    assert len(posts) == 2
    assert wait <= posts[1] - posts[0] < wait * 1.2 + 0.25  # at most 20 % jitter
