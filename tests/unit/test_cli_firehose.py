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


ORDER = "3f0d8a4e-5b7c-4e21-9a3f-7c1d2e4b5a60"
LIFECYCLE = ["pending", "routing", "building", "submitted", "confirmed"]
NOTIFIER_DOWN = ApiError(f"cannot reach the notifier at {NOTIFIER}: refused")


def _dialling(answers: list[_Connection | ApiError], urls: list[str]) -> OrdersClient:
    """A client whose notifier answers each dial with the next of ``answers``: a
    connection, or the error of a notifier that is down."""
    client = _client([], urls)

    async def connect(url: str) -> _Connection:
        urls.append(url)
        answer = answers.pop(0)
        if isinstance(answer, ApiError):
            raise answer
        return answer

    client._connect = connect  # type: ignore[method-assign,assignment]
    return client


@pytest.fixture(autouse=True)
def _no_real_back_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("orders_cli.client._FIRST_PAUSE_S", 0.001)


async def test_following_an_order_outlasts_a_notifier_that_keeps_restarting() -> None:
    """Each status arrives on its own connection, with the notifier down in
    between: eight lost connections in all, never more than two in a row. The
    order is followed to the end, each reconnect after the last version seen."""
    urls: list[str] = []
    answers: list[_Connection | ApiError] = []
    for version, status in enumerate(LIFECYCLE, start=1):
        if version > 1:
            answers.append(NOTIFIER_DOWN)
        answers.append(
            _Connection([{"orderId": ORDER, "version": version, "status": status}])
        )
    client = _dialling(answers, urls)

    async with client:
        seen = [frame["status"] async for frame in client.follow(ORDER)]

    assert seen == LIFECYCLE
    resumed_after = [int(url.rpartition("after=")[2]) for url in urls]
    assert resumed_after == [0, 1, 1, 2, 2, 3, 3, 4, 4]


async def test_a_notifier_down_for_good_is_an_api_error_naming_the_cause() -> None:
    urls: list[str] = []
    client = _dialling([NOTIFIER_DOWN] * 10, urls)

    async with client:
        with pytest.raises(
            ApiError, match=r"lost the notifier 6 times in a row.*refused"
        ):
            await anext(aiter(client.follow(ORDER)))

    assert len(urls) == 7


async def test_the_firehose_outlasts_a_notifier_restart() -> None:
    urls: list[str] = []
    frame = {"position": 42, "orderId": "o", "status": "pending"}
    client = _dialling([NOTIFIER_DOWN, NOTIFIER_DOWN, _Connection([frame])], urls)

    async with client:
        first = await anext(aiter(client.firehose(after=41)))

    assert first == frame
    assert urls == [f"{NOTIFIER}/ws/orders?after=41"] * 3


async def test_a_live_watch_whose_first_dial_fails_resumes_from_the_list() -> None:
    """What happened while the notifier was down is not skipped: the retry asks
    for everything after the position listed before the first dial."""
    urls: list[str] = []
    frame = {"position": 42, "orderId": "o", "status": "pending"}
    client = _dialling([NOTIFIER_DOWN, _Connection([frame])], urls)

    async with client:
        first = await anext(aiter(client.firehose()))

    assert first == frame
    assert urls == [f"{NOTIFIER}/ws/orders", f"{NOTIFIER}/ws/orders?after=41"]
