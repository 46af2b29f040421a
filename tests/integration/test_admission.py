"""Admission control on a running system: refused promptly above the limit.

A chain that takes 1.5-2 s to land keeps orders in flight long enough to fill a
limit of two, and a read model that trails by a second shows that orders it has
not projected yet still count.
"""

import asyncio
import math
import uuid

import httpx
import pytest

from gateway.handlers import order_id_for
from tests.integration import probes
from tests.integration.clients import submit, wait_for_status
from tests.integration.system import System

pytestmark = pytest.mark.integration


def body(key: str) -> dict[str, object]:
    return {**probes.ORDER, "clientOrderId": key}


async def test_a_new_order_above_the_limit_is_refused_with_retry_after(
    admission_system: System,
) -> None:
    system = admission_system
    keys = [f"adm-{uuid.uuid4()}" for _ in range(3)]
    first = await submit(system, body(keys[0]))
    second = await submit(system, body(keys[1]))

    refused = await submit(system, body(keys[2]), wait_for_room=False)
    replayed = await submit(system, body(keys[0]))

    assert (first.status_code, second.status_code) == (202, 202)
    assert refused.status_code == 503
    retry_after = int(refused.headers["Retry-After"])
    retry_after_ms = int(refused.headers["Retry-After-Ms"])
    assert 250 <= retry_after_ms <= 30_000
    assert retry_after == max(1, math.ceil(retry_after_ms / 1000))
    assert "engine at capacity" in refused.json()["detail"]
    assert "limit 2" in refused.json()["detail"]
    assert f"retry in {retry_after_ms / 1000:g} s" in refused.json()["detail"]
    # A repeated clientOrderId still gets its order, limit or not.
    assert replayed.status_code == 200
    assert replayed.json()["orderId"] == first.json()["orderId"]
    # Nothing was recorded for the refused order.
    async with httpx.AsyncClient(base_url=system.base_url) as client:
        missing = await client.get(f"/api/orders/{order_id_for(keys[2])}")
        metrics = (await client.get("/metrics")).text
    assert missing.status_code == 404
    assert f"oe_admission_retry_after_seconds {retry_after_ms / 1000}" in metrics
    assert "oe_admission_limit 2.0" in metrics

    for accepted in (first, second):
        await wait_for_status(system, accepted.json()["orderId"], {"confirmed"})
    async with asyncio.timeout(10):
        while (
            retried := await submit(system, body(keys[2]), wait_for_room=False)
        ).status_code == 503:
            await asyncio.sleep(0.2)
    assert retried.status_code == 202
    await wait_for_status(system, retried.json()["orderId"], {"confirmed"})


async def test_a_burst_of_concurrent_orders_gets_exactly_the_room_left(
    admission_system: System,
) -> None:
    """Six orders sent at once, before any append answers: two are accepted, four
    are refused, and nothing is recorded for the four."""
    system = admission_system
    async with (
        httpx.AsyncClient(base_url=system.base_url) as client,
        asyncio.timeout(30),
    ):
        # Start from an idle engine: earlier tests' orders must have ended.
        while "oe_orders_in_flight 0.0" not in (await client.get("/metrics")).text:
            await asyncio.sleep(0.2)

    keys = [f"burst-{uuid.uuid4()}" for _ in range(6)]
    answers = await asyncio.gather(
        *(submit(system, body(key), wait_for_room=False) for key in keys)
    )

    codes = sorted(answer.status_code for answer in answers)
    assert codes == [202, 202, 503, 503, 503, 503]
    async with httpx.AsyncClient(base_url=system.base_url) as client:
        for key, answer in zip(keys, answers, strict=True):
            shown = await client.get(f"/api/orders/{order_id_for(key)}")
            assert shown.status_code == (404 if answer.status_code == 503 else 200)


async def test_a_gateway_counts_the_orders_another_gateway_just_accepted(
    two_gateway_admission_system: System,
) -> None:
    """Two orders through one gateway fill the room for both: the other gateway
    refuses a third before the read model has projected the first two."""
    system = two_gateway_admission_system
    first_gateway = f"http://127.0.0.1:{system.port('gateway')}"
    second_gateway = f"http://127.0.0.1:{system.port('gateway-2')}"
    keys = [f"two-{uuid.uuid4()}" for _ in range(3)]
    async with httpx.AsyncClient(timeout=10) as client:
        placed = [
            await client.post(f"{first_gateway}/api/orders/execute", json=body(key))
            for key in keys[:2]
        ]
        # Until gateway-2's next count (every 0.25 s) sees both, well inside the
        # read model's 5 s lag.
        async with asyncio.timeout(3):
            while await probes.metric(system, "gateway-2", "oe_orders_in_flight") < 2:
                await asyncio.sleep(0.05)
        third = await client.post(
            f"{second_gateway}/api/orders/execute", json=body(keys[2])
        )
        listed = (await client.get(f"{second_gateway}/api/orders")).json()

    assert [answer.status_code for answer in placed] == [202, 202]
    assert third.status_code == 503, third.text
    assert "limit 2" in third.json()["detail"]
    # The read model had not caught up: the count came from the log itself.
    shown = {order["orderId"] for order in listed["orders"]}
    assert not shown & {answer.json()["orderId"] for answer in placed}
