"""Replicas of gateway and notifier on one host share their ports (make run GATEWAYS=2).

Replicas of router and executor (and of the notifier on ports of their own) are
proven by the chaos suite; here the two services a client connects to share the
one API port and the one WebSocket port, as `make run GATEWAYS=2 NOTIFIERS=2` does.
"""

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from tests.integration import probes
from tests.integration.clients import stream, submit
from tests.integration.system import System, isolated_system

pytestmark = pytest.mark.integration

REPLICAS = {"gateway": 2, "notifier": 2}
ORDERS = 40


@pytest.fixture(scope="module")
def replicated_system(
    infrastructure: tuple[str, str], broker_namespace: str
) -> Iterator[System]:
    with isolated_system(
        infrastructure,
        broker_namespace,
        "replicas",
        # Small pools: this system runs beside the session's other systems.
        {"HTTP_REUSE_PORT": "true", "DB_POOL_SIZE": "3"},
        replicas=REPLICAS,
    ) as running:
        yield running


async def test_two_gateways_and_two_notifiers_serve_one_api_and_one_websocket_port(
    replicated_system: System,
) -> None:
    system = replicated_system
    assert system.port("gateway") == system.port("gateway-2")
    assert system.port("notifier") == system.port("notifier-2")

    async def one(index: int) -> list[str]:
        body = {**probes.ORDER, "clientOrderId": f"replicas-{uuid.uuid4()}-{index}"}
        answer = await submit(system, body)
        assert answer.status_code == 202, answer.text
        order_id = answer.json()["orderId"]
        return (await stream(system, f"/ws/orders/{order_id}")).statuses

    statuses = await asyncio.gather(*(one(i) for i in range(ORDERS)))

    assert statuses == [probes.HAPPY_PATH] * ORDERS
    # The kernel spread the connections over both replicas of each port.
    accepted = [
        system.log_since_start(g).count('"order accepted"')
        for g in ("gateway", "gateway-2")
    ]
    assert sum(accepted) == ORDERS
    assert min(accepted) > 0, accepted
    sockets = [
        system.log_since_start(n).count('"connection open"')
        for n in ("notifier", "notifier-2")
    ]
    assert sum(sockets) >= ORDERS
    assert min(sockets) > 0, sockets
