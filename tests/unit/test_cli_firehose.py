"""``orders watch``: the firehose client resumes without a gap, and says why it
was refused."""

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from orders_cli.client import ApiError, OrdersClient

NOTIFIER = "ws://notifier.test"


class _Connection:
    """A notifier connection that sends ``frames``, then closes with ``code``."""

    def __init__(self, frames: list[dict[str, Any]], code: int = 1006) -> None:
        self._frames = frames
        self.close_code = code
        self.close_reason = ""

    async def __aiter__(self) -> AsyncIterator[str]:
        for frame in self._frames:
            yield json.dumps(frame)

    async def close(self) -> None:
        return None


def _client(connections: list[_Connection], urls: list[str]) -> OrdersClient:
    """A client whose API lists orders through position 41 and whose notifier
    connections are ``connections``, in turn; ``urls`` records what it dialled."""

    def api(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/orders"
        return httpx.Response(200, json={"orders": [], "asOfPosition": 41})

    client = OrdersClient("http://api.test", NOTIFIER)
    client._http = httpx.AsyncClient(
        base_url="http://api.test", transport=httpx.MockTransport(api)
    )

    async def connect(url: str) -> _Connection:
        urls.append(url)
        return connections.pop(0)

    client._connect = connect  # type: ignore[method-assign,assignment]
    return client


async def test_a_drop_before_the_first_frame_resumes_from_the_listed_position() -> None:
    """Nothing shown yet is no reason to miss what came meanwhile: the reconnect
    asks for everything after the position listed before the first connect."""
    urls: list[str] = []
    frame = {"position": 42, "orderId": "o", "status": "pending"}
    client = _client([_Connection([]), _Connection([frame])], urls)

    async with client:
        first = await anext(aiter(client.firehose()))

    assert first == frame
    assert urls == [f"{NOTIFIER}/ws/orders", f"{NOTIFIER}/ws/orders?after=41"]


async def test_a_refused_cursor_is_an_api_error_naming_the_reason() -> None:
    urls: list[str] = []
    refusal = {"error": "after=999 is beyond the head 41", "orderId": ""}
    client = _client([_Connection([refusal], code=4400)], urls)

    async with client:
        with pytest.raises(ApiError, match="beyond the head 41") as refused:
            await anext(aiter(client.firehose(after=999)))

    assert refused.value.status == 400
