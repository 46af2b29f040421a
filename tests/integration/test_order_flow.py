"""End to end: orders submitted over HTTP, followed over WebSocket, on real services."""

import asyncio
import re
import uuid

import httpx
import psycopg
import pytest

from shared.eventstore.postgres import APPEND_EVENTS
from tests.integration import probes
from tests.integration.clients import stream, submit, wait_for_status
from tests.integration.system import System

pytestmark = pytest.mark.integration


async def test_market_order_streams_every_status_then_closes(system: System) -> None:
    """A client sees pending → … → confirmed with txHash and finalPrice, then 1000."""
    answer = await submit(system, probes.ORDER)
    assert answer.status_code == 202
    receipt = answer.json()
    assert receipt["status"] == "pending"
    assert receipt["links"]["ws"].endswith(f"/ws/orders/{receipt['orderId']}")

    seen = await stream(system, f"/ws/orders/{receipt['orderId']}")

    assert seen.statuses == probes.HAPPY_PATH
    confirmed = seen.frames[-1]
    assert confirmed["txHash"]
    assert float(confirmed["finalPrice"]) > 0
    assert float(confirmed["amountOut"]) > 0
    assert confirmed["venue"]
    assert [f["version"] for f in seen.frames] == [1, 2, 3, 4, 5]
    assert seen.close_code == 1000


async def test_a_late_subscriber_gets_the_whole_history(system: System) -> None:
    """Connecting after the order finished replays every status from the store."""
    order_id = (await submit(system, probes.ORDER)).json()["orderId"]
    await wait_for_status(system, order_id, {"confirmed", "failed"})

    seen = await stream(system, f"/ws/orders/{order_id}")

    assert seen.statuses == probes.HAPPY_PATH
    assert seen.close_code == 1000


async def test_a_subscriber_resumes_after_a_version(system: System) -> None:
    """``?after=2`` sends only the events after version 2: no gap, no duplicate."""
    order_id = (await submit(system, probes.ORDER)).json()["orderId"]
    await wait_for_status(system, order_id, {"confirmed"})

    seen = await stream(system, f"/ws/orders/{order_id}?after=2")

    assert [f["version"] for f in seen.frames] == [3, 4, 5]
    assert seen.statuses == probes.HAPPY_PATH[2:]


async def test_many_orders_in_flight_all_confirm_in_order(system: System) -> None:
    """Twenty orders at once each stream their own lifecycle, nothing mixed up."""
    answers = await asyncio.gather(
        *(submit(system, {**probes.ORDER, "amount": 1 + i % 5}) for i in range(20))
    )
    order_ids = [a.json()["orderId"] for a in answers]

    streams = await asyncio.gather(
        *(stream(system, f"/ws/orders/{i}") for i in order_ids)
    )

    for order_id, seen in zip(order_ids, streams, strict=True):
        assert seen.statuses == probes.HAPPY_PATH
        assert {f["orderId"] for f in seen.frames} == {order_id}


async def test_the_order_shows_quotes_route_and_realised_amounts(
    system: System,
) -> None:
    """GET /api/orders/{id} folds the events: both quotes, the plan, what moved."""
    order_id = (await submit(system, probes.ORDER)).json()["orderId"]

    order = await wait_for_status(system, order_id, {"confirmed"})

    assert {q["venue"] for q in order["quotes"]} == {"raydium", "meteora"}
    assert sum(leg["bps"] for leg in order["routePlan"]["legs"]) == 10_000
    assert order["routePlan"]["reason"]
    assert order["txHash"]
    assert float(order["amountIn"]) == 10
    assert float(order["amountOut"]) > 0
    assert order["attempt"] == 1
    assert order["failures"] == []


async def test_the_event_history_lists_every_event(system: System) -> None:
    """GET /api/orders/{id}/events is the stream, in version order."""
    order_id = (await submit(system, probes.ORDER)).json()["orderId"]
    await wait_for_status(system, order_id, {"confirmed"})

    async with httpx.AsyncClient(base_url=system.base_url) as client:
        events = (await client.get(f"/api/orders/{order_id}/events")).json()["events"]

    assert [e["type"] for e in events] == [
        "OrderAccepted",
        "RoutingStarted",
        "RouteSelected",
        "TransactionSubmitted",
        "SwapConfirmed",
    ]


def _decimal_texts(value: object) -> list[str]:
    """Every string in a JSON value that reads as a number, however nested."""
    if isinstance(value, dict):
        return [t for v in value.values() for t in _decimal_texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _decimal_texts(v)]
    return [value] if isinstance(value, str) and _NUMBER.fullmatch(value) else []


_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")


async def test_a_tiny_amount_reads_as_its_digits_everywhere(system: System) -> None:
    """0.0000001 SOL, sent as the JSON number ``1e-07``, is ``"0.0000001"``.

    On the WebSocket, in the order, its history and the list: never ``1E-7``, a
    form no trader writes. Every amount and price the engine derived from it
    (quotes, the plan, what the chain moved) is written in digits too.
    """
    answer = await submit(system, {**probes.ORDER, "amount": 1e-7})
    assert answer.status_code == 202, answer.text
    order_id = answer.json()["orderId"]

    seen = await stream(system, f"/ws/orders/{order_id}")
    async with (
        httpx.AsyncClient(base_url=system.base_url) as client,
        asyncio.timeout(10),
    ):
        order = (await client.get(f"/api/orders/{order_id}")).json()
        events = (await client.get(f"/api/orders/{order_id}/events")).json()
        while not (
            listed := [
                o
                for o in (await client.get("/api/orders")).json()["orders"]
                if o["orderId"] == order_id and o["version"] == order["version"]
            ]
        ):
            await asyncio.sleep(0.1)

    assert seen.frames[0]["amount"] == "0.0000001"
    assert order["amount"] == "0.0000001"
    assert events["events"][0]["amount"] == "0.0000001"
    assert listed[0]["amount"] == "0.0000001"
    texts = _decimal_texts([seen.frames, order, events, listed])
    # quotes, plan and (when it landed) the ledger's amounts are all in there
    assert len(texts) > 10, texts
    assert [t for t in texts if "e" in t.lower()] == []


async def test_the_order_list_comes_from_the_read_model(system: System) -> None:
    """GET /api/orders?status=confirmed lists the order once projected."""
    order_id = (await submit(system, probes.ORDER)).json()["orderId"]
    await wait_for_status(system, order_id, {"confirmed"})

    async with (
        httpx.AsyncClient(base_url=system.base_url) as client,
        asyncio.timeout(10),
    ):
        while True:
            listed = (
                await client.get("/api/orders", params={"status": "confirmed"})
            ).json()
            mine = [o for o in listed["orders"] if o["orderId"] == order_id]
            if mine:
                break
            await asyncio.sleep(0.1)

    assert mine[0]["txHash"]
    assert mine[0]["venue"]
    # The row reflects the whole stream: a frame at or below it is already in it.
    assert mine[0]["version"] == len(probes.HAPPY_PATH)
    assert all(o["status"] == "confirmed" for o in listed["orders"])


async def test_the_order_list_pages_with_its_next_cursor(system: System) -> None:
    """limit=1 then before=nextCursor: the next page is the next order, not the
    same one again."""
    for _ in range(2):
        await submit(system, probes.ORDER)

    async with (
        httpx.AsyncClient(base_url=system.base_url) as client,
        asyncio.timeout(10),
    ):
        while len((await client.get("/api/orders")).json()["orders"]) < 2:
            await asyncio.sleep(0.1)
        first = (await client.get("/api/orders", params={"limit": 1})).json()
        second = (
            await client.get(
                "/api/orders", params={"limit": 1, "before": first["nextCursor"]}
            )
        ).json()

    assert first["nextCursor"]
    [newest], [next_one] = first["orders"], second["orders"]
    async with httpx.AsyncClient(base_url=system.base_url) as client:
        everything = (await client.get("/api/orders", params={"limit": 1000})).json()
        exactly = len(everything["orders"])
        last_page = (await client.get("/api/orders", params={"limit": exactly})).json()
    assert last_page["nextCursor"] is None  # no empty page to fetch after it
    assert next_one["orderId"] != newest["orderId"]
    assert next_one["createdAt"] <= newest["createdAt"]


@pytest.mark.parametrize(
    ("params", "named"),
    [({"before": "not-a-cursor"}, "before"), ({"offset": "50"}, "offset")],
    ids=["a cursor it did not return", "an unknown parameter"],
)
async def test_the_order_list_refuses_what_it_cannot_page_by(
    system: System, params: dict[str, str], named: str
) -> None:
    async with httpx.AsyncClient(base_url=system.base_url) as client:
        answer = await client.get("/api/orders", params=params)

    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", named]


async def test_a_repeated_client_order_id_returns_the_same_order(
    system: System,
) -> None:
    """Submitting the same clientOrderId twice never creates a second order."""
    body = {**probes.ORDER, "clientOrderId": f"client-{uuid.uuid4()}"}

    first = await submit(system, body)
    second = await submit(system, body)

    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["orderId"] == first.json()["orderId"]
    seen = await stream(system, f"/ws/orders/{first.json()['orderId']}")
    assert seen.statuses == probes.HAPPY_PATH


async def test_an_idempotency_key_header_works_like_client_order_id(
    system: System,
) -> None:
    """The Idempotency-Key header deduplicates submits as well."""
    key = f"key-{uuid.uuid4()}"

    first = await submit(system, probes.ORDER, headers={"Idempotency-Key": key})
    second = await submit(system, probes.ORDER, headers={"Idempotency-Key": key})

    assert second.json()["orderId"] == first.json()["orderId"]


async def test_a_reused_client_order_id_with_another_order_is_refused(
    system: System,
) -> None:
    """The same clientOrderId with other parameters is a 409, not a replay."""
    key = f"client-{uuid.uuid4()}"
    await submit(system, {**probes.ORDER, "clientOrderId": key})

    clash = await submit(system, {**probes.ORDER, "amount": 11, "clientOrderId": key})

    assert clash.status_code == 409
    assert key in clash.json()["detail"]
    assert "already used for another order" in clash.json()["detail"]


async def test_a_reused_idempotency_key_header_names_the_header_too(
    system: System,
) -> None:
    """A client that sent only the header is not told about a field it never set."""
    key = f"header-{uuid.uuid4()}"
    await submit(system, probes.ORDER, headers={"Idempotency-Key": key})

    clash = await submit(
        system, {**probes.ORDER, "amount": 11}, headers={"Idempotency-Key": key}
    )

    assert clash.status_code == 409
    assert "Idempotency-Key" in clash.json()["detail"]


async def test_an_order_holding_an_event_this_release_cannot_read_says_so(
    system: System,
) -> None:
    """A newer release recorded a type this one does not know in the order's
    stream (a rolling upgrade): its detail, history and stream say so, a 503
    and a 1011, never a 500 or a dropped connection."""
    order_id = (await submit(system, probes.ORDER)).json()["orderId"]
    order = await wait_for_status(system, order_id, {"confirmed", "failed"})
    async with await psycopg.AsyncConnection.connect(
        system.env["DATABASE_URL"], autocommit=True
    ) as conn:
        await conn.execute(
            APPEND_EVENTS,
            (
                uuid.UUID(order_id),
                order["version"],
                [uuid.uuid4()],
                ["OrderAnnotated"],
                ['{"type": "OrderAnnotated", "note": "from a newer release"}'],
                [uuid.uuid4()],
                [None],
            ),
        )

    async with httpx.AsyncClient(base_url=system.base_url, timeout=10) as client:
        detail = await client.get(f"/api/orders/{order_id}")
        history = await client.get(f"/api/orders/{order_id}/events")
    seen = await stream(system, f"/ws/orders/{order_id}")

    for answer in (detail, history):
        assert answer.status_code == 503, answer.text
        assert f"order {order_id} holds an event" in answer.json()["detail"]
        assert "cannot read" in answer.json()["detail"]
    assert seen.close_code == 1011
    assert "cannot read" in seen.close_reason


async def test_an_unknown_order_id_gets_an_error_and_close_code(system: System) -> None:
    """WS for an order that does not exist says so and closes with 4404."""
    seen = await stream(system, f"/ws/orders/{uuid.uuid4()}")

    assert seen.frames[0]["error"] == "order not found"
    assert seen.close_code == 4404


async def test_a_malformed_order_id_gets_an_error_and_close_code(
    system: System,
) -> None:
    """WS for a malformed id says what is wrong and closes with 4400."""
    seen = await stream(system, "/ws/orders/not-a-uuid")

    assert "malformed order id" in seen.frames[0]["error"]
    assert seen.close_code == 4400


async def test_forced_slippage_fails_after_three_attempts_with_the_reason(
    slippage_system: System,
) -> None:
    """Every attempt lands with slippage exceeded: 3 attempts, then failed."""
    order_id = (await submit(slippage_system, probes.ORDER)).json()["orderId"]

    seen = await stream(slippage_system, f"/ws/orders/{order_id}", timeout=60)

    assert seen.statuses == [
        "pending",
        "routing",
        "building",
        "submitted",
        "routing",
        "building",
        "submitted",
        "routing",
        "building",
        "submitted",
        "failed",
    ]
    failed = seen.frames[-1]
    assert failed["failure"] == "SLIPPAGE_EXCEEDED"
    assert "3 attempts" in failed["reason"]
    assert [f["attempt"] for f in seen.frames if f["status"] == "routing"] == [1, 2, 3]
    assert seen.close_code == 1000
    async with httpx.AsyncClient(base_url=slippage_system.base_url) as client:
        order = (await client.get(f"/api/orders/{order_id}")).json()
        events = (await client.get(f"/api/orders/{order_id}/events")).json()["events"]
    assert order["status"] == "failed"
    assert [f["attempt"] for f in order["failures"]] == [1, 2, 3]
    assert all(f["failure"] == "SLIPPAGE_EXCEEDED" for f in order["failures"])
    assert sum(e["type"] == "TransactionSubmitted" for e in events) == 3
