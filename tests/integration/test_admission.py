"""Admission control on a running system: refused promptly above the limit.

A chain that takes 1.5-2 s to land keeps orders in flight long enough to fill a
limit of two, and a read model that trails by a second shows that orders it has
not projected yet still count.
"""

import asyncio
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

    refused = await submit(system, body(keys[2]))
    replayed = await submit(system, body(keys[0]))

    assert (first.status_code, second.status_code) == (202, 202)
    assert refused.status_code == 503
    assert int(refused.headers["Retry-After"]) >= 1
    assert "engine at capacity" in refused.json()["detail"]
    assert "limit 2" in refused.json()["detail"]
    # A repeated clientOrderId still gets its order, limit or not.
    assert replayed.status_code == 200
    assert replayed.json()["orderId"] == first.json()["orderId"]
    # Nothing was recorded for the refused order.
    async with httpx.AsyncClient(base_url=system.base_url) as client:
        missing = await client.get(f"/api/orders/{order_id_for(keys[2])}")
    assert missing.status_code == 404

    for accepted in (first, second):
        await wait_for_status(system, accepted.json()["orderId"], {"confirmed"})
    async with asyncio.timeout(10):
        while (retried := await submit(system, body(keys[2]))).status_code == 503:
            await asyncio.sleep(0.2)
    assert retried.status_code == 202
    await wait_for_status(system, retried.json()["orderId"], {"confirmed"})
