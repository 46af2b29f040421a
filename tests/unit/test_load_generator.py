"""The load generator submits as a well-behaved client: a 503 is waited out as asked."""

import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tools.load import Load, LoadPlan


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[str, list[float]]]:
    """A gateway at capacity once (503, Retry-After: 1), then accepting."""
    posts: list[float] = []

    async def execute(request: web.Request) -> web.Response:
        posts.append(time.monotonic())
        body = await request.json()
        if len(posts) == 1:
            return web.json_response(
                {"detail": "engine at capacity"},
                status=503,
                headers={"Retry-After": "1"},
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
        yield f"http://127.0.0.1:{port}", posts
    finally:
        await runner.cleanup()


async def test_a_503_is_retried_after_the_time_it_names(
    gateway: tuple[str, list[float]],
) -> None:
    url, posts = gateway
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
    assert 1.0 <= posts[1] - posts[0] < 1.5  # Retry-After plus at most 20 % jitter
