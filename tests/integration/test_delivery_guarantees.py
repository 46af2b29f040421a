"""What the broker may do to a message, and what a user still sees.

RabbitMQ delivers at least once, a message may be garbage, a routing key may match
no queue: each test provokes one of these on a running system and checks the
order's stream, the chain's ledger and the broker's safety queues.
"""

import asyncio
import subprocess
import sys
import time
import uuid

import aio_pika
import httpx
import pytest

from shared.domain.envelope import EventEnvelope
from shared.eventstore.port import RawEvent
from shared.messaging.relay import to_message
from shared.messaging.topology import routing_key
from tests.integration import probes
from tests.integration.clients import stream, submit, wait_for_status
from tests.integration.system import SERVICES, System, isolated_system

pytestmark = pytest.mark.integration

DUPLICATED = ("OrderAccepted", "RouteSelected")


async def republish(system: System, order_id: str, types: tuple[str, ...]) -> None:
    """Send these events of the order again, byte for byte as the relay sends them."""
    envelopes = {e.type: e for e in await probes.history(system, order_id)}
    for event_type in types:
        envelope = envelopes[event_type]
        await probes.publish(
            system, to_message(RawEvent.of(envelope)), routing_key(event_type)
        )


async def drained(system: System) -> None:
    """A later order confirms and both work queues are empty: duplicates were seen."""
    sentinel = (await submit(system, probes.ORDER)).json()["orderId"]
    await wait_for_status(system, sentinel, {"confirmed"}, timeout=15)
    async with asyncio.timeout(10):
        while await probes.ready_messages(
            system, "router"
        ) or await probes.ready_messages(system, "executor"):
            await asyncio.sleep(0.1)


async def assert_unchanged_for(
    system: System, order_id: str, seconds: float, *, events: int, swaps: int
) -> None:
    """Poll the stream and the ledger for a while; fail on the first change."""
    deadline = time.monotonic() + seconds
    while True:
        assert len(await probes.event_types(system, order_id)) == events
        assert len(probes.landed_swaps(system, order_id)) == swaps
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(0.1)


async def test_a_duplicated_delivery_after_confirmation_decides_nothing(
    system: System,
) -> None:
    """Redelivering a confirmed order's events adds no event and lands no 2nd swap."""
    order_id = (await submit(system, probes.ORDER)).json()["orderId"]
    await wait_for_status(system, order_id, {"confirmed"})

    for _ in range(2):
        await republish(system, order_id, DUPLICATED)
    await drained(system)

    await assert_unchanged_for(system, order_id, 1.0, events=5, swaps=1)
    assert await probes.event_types(system, order_id) == probes.HAPPY_EVENTS
    assert (await probes.order_status(system, order_id)) == "confirmed"
    assert len(probes.sent_transactions(system, order_id)) == 1
    seen = await stream(system, f"/ws/orders/{order_id}")
    assert seen.statuses == probes.HAPPY_PATH


async def test_a_duplicated_delivery_in_flight_lands_one_swap(
    slow_chain_system: System,
) -> None:
    """Redelivering an order's events while its swap is in flight lands one swap."""
    system = slow_chain_system
    order_id = (await submit(system, probes.ORDER)).json()["orderId"]
    await wait_for_status(system, order_id, {"submitted"}, timeout=15)

    for _ in range(2):
        await republish(system, order_id, DUPLICATED)
    await wait_for_status(system, order_id, {"confirmed", "failed"}, timeout=15)
    await drained(system)

    await assert_unchanged_for(system, order_id, 1.0, events=5, swaps=1)
    assert await probes.event_types(system, order_id) == probes.HAPPY_EVENTS
    assert (await probes.order_status(system, order_id)) == "confirmed"
    assert len(probes.sent_transactions(system, order_id)) == 1
    assert [ok for _, ok in probes.landed_swaps(system, order_id)] == [True]
    seen = await stream(system, f"/ws/orders/{order_id}")
    assert seen.statuses == probes.HAPPY_PATH
    assert [f["version"] for f in seen.frames] == [1, 2, 3, 4, 5]


async def test_a_poison_message_is_parked_and_the_router_keeps_serving(
    system: System,
) -> None:
    """A body that is no event envelope lands in <ns>.parking; orders still confirm."""
    body = f"not an event envelope {uuid.uuid4()}".encode()
    await probes.publish(
        system,
        aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        routing_key("OrderAccepted"),
    )

    parked = await probes.get_matching(
        system, "parking", lambda m: m.body == body, timeout=10
    )

    assert parked.body == body
    order_id = (await submit(system, probes.ORDER)).json()["orderId"]
    order = await wait_for_status(system, order_id, {"confirmed", "failed"})
    assert order["status"] == "confirmed"


async def test_an_event_of_an_unknown_order_is_parked(system: System) -> None:
    """A well-formed event for an order the store lacks is parked, not dropped."""
    order_id = (await submit(system, probes.ORDER)).json()["orderId"]
    await wait_for_status(system, order_id, {"confirmed"})
    accepted = (await probes.history(system, order_id))[0]
    stranger = uuid.uuid4()
    orphan = accepted.model_copy(
        update={
            "event_id": uuid.uuid4(),
            "order_id": stranger,
            "event": accepted.event.model_copy(update={"order_id": stranger}),
        }
    )
    message = to_message(RawEvent.of(orphan))

    await probes.publish(system, message, routing_key("OrderAccepted"))

    parked = await probes.get_matching(
        system, "parking", lambda m: m.message_id == message.message_id, timeout=10
    )
    assert parked.body == message.body


async def test_an_event_nobody_binds_is_kept_in_unrouted(system: System) -> None:
    """A message no queue binds goes to <ns>.unrouted through the alternate exchange.

    ``order.#`` is bound by every notifier, so the key must lie outside it to be
    unroutable while a notifier runs.
    """
    message_id = str(uuid.uuid4())
    body = f'{{"type": "SomethingElse", "id": "{message_id}"}}'.encode()
    message = aio_pika.Message(
        body,
        message_id=message_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )

    await probes.publish(system, message, "audit.SomethingElse")

    kept = await probes.get_matching(
        system, "unrouted", lambda m: m.message_id == message_id, timeout=10
    )
    assert kept.body == body
    assert kept.routing_key == "audit.SomethingElse"


async def test_exactly_one_relay_publishes(system: System) -> None:
    """While four services run, exactly one of them holds the relay lock."""
    leader = await asyncio.to_thread(probes.relay_leader, system)

    # Standbys retry once a second: sample across more than one retry period.
    holders: list[int] = []
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        holders.append(len(probes.relay_lock_holders(system)))
        await asyncio.sleep(0.1)

    assert set(holders) == {1}
    assert [s for s in SERVICES if system.processes[s].poll() is None] == list(SERVICES)
    assert await asyncio.to_thread(probes.relay_leader, system) == leader


async def test_a_parked_trigger_is_redriven_and_its_order_confirms(
    infrastructure: tuple[str, str], broker_namespace: str
) -> None:
    """An order whose trigger was parked waits, not lost, and the gateway reports
    it stalled; re-driven, it confirms and is stalled no more."""
    with isolated_system(
        infrastructure, broker_namespace, "redrive", {"STALLED_AFTER_MS": "500"}
    ) as system:
        system.stop("router")
        answer = await submit(system, probes.ORDER)
        assert answer.status_code == 202
        order_id = uuid.UUID(answer.json()["orderId"])

        # Its OrderAccepted waits in the router's queue; park it as a failing
        # handler would (rejected, dead-lettered to parking).
        async with probes.amqp_channel(system) as channel:
            queue = await channel.declare_queue(
                probes.name(system, "router"), passive=True
            )
            async with asyncio.timeout(10):
                while True:
                    message = await queue.get(no_ack=False, fail=False)
                    if message is None:
                        await asyncio.sleep(0.1)
                        continue
                    if EventEnvelope.model_validate_json(message.body).order_id == (
                        order_id
                    ):
                        await message.reject(requeue=False)
                        break
                    await message.reject(requeue=True)
            parking = await channel.declare_queue(
                probes.name(system, "parking"), passive=True
            )
            async with asyncio.timeout(10):
                while not parking.declaration_result.message_count:
                    await asyncio.sleep(0.1)
                    parking = await channel.declare_queue(parking.name, passive=True)
        system.start("router")
        system.wait_ready("router")
        async with httpx.AsyncClient(base_url=system.base_url, timeout=10) as client:
            waiting = (await client.get(f"/api/orders/{order_id}")).json()
        assert waiting["status"] == "pending"
        await stalled_become(system, pending=1)
        assert f'"order_ids": ["{order_id}"]' in system.log_since_start("gateway")

        redriven = subprocess.run(
            [sys.executable, "-m", "shared.messaging.redrive"],
            env=system.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert redriven.returncode == 0, redriven.stderr
        assert f"re-drove 1 to {probes.name(system, 'router')}" in redriven.stdout
        order = await wait_for_status(system, str(order_id), {"confirmed", "failed"})
        assert order["status"] == "confirmed"
        assert len(probes.landed_swaps(system, str(order_id))) == 1
        await stalled_become(system, pending=0)


async def stalled_become(system: System, *, pending: int) -> None:
    """Wait until the gateway's oe_orders_stalled shows this many pending orders
    (it looks every few seconds) and none in any other status."""
    async with asyncio.timeout(20):
        while True:
            samples = await probes.metric_samples(system, "gateway")
            if probes.metric_value(
                samples, "oe_orders_stalled", status="pending"
            ) == pending and probes.metric_value(samples, "oe_orders_stalled") == (
                pending
            ):
                return
            await asyncio.sleep(0.2)
