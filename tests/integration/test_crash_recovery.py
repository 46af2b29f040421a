"""Service processes killed with SIGKILL mid-work: nothing accepted is lost.

Each test kills a real process (no shutdown hook runs, in-flight deliveries are
never acknowledged), restarts it and follows the orders the way a user would:
GET /api/orders/{id}, the WebSocket stream and, for money, the chain's ledger.
Every killed service is restarted and ready again before the test ends. One test
stops the executor with SIGTERM instead, as a rolling restart does.
"""

import asyncio
import signal

import pytest

from tests.integration import probes
from tests.integration.clients import stream, submit
from tests.integration.system import System

pytestmark = pytest.mark.integration


async def submit_many(system: System, count: int) -> list[str]:
    answers = await asyncio.gather(
        *(submit(system, probes.ORDER) for _ in range(count))
    )
    assert [a.status_code for a in answers] == [202] * count
    return [a.json()["orderId"] for a in answers]


def assert_one_landed_swap_each(system: System, order_ids: list[str]) -> None:
    for order_id in order_ids:
        swaps = probes.landed_swaps(system, order_id)
        assert [ok for _, ok in swaps] == [True], (order_id, swaps)


async def test_killing_the_relay_leader_hands_over_and_loses_no_order(
    system: System,
) -> None:
    """SIGKILL of the relay leader: another service publishes, every order ends."""
    leader = await asyncio.to_thread(probes.relay_leader, system)
    order_ids: list[str] = []

    with probes.restored(system, leader):
        order_ids += await submit_many(system, 5)
        probes.kill(system, leader)
        successor = await asyncio.to_thread(probes.relay_leader, system, timeout=10)
        if leader != "gateway":
            order_ids += await submit_many(system, 5)
        await probes.restart(system, leader)
    if leader == "gateway":
        order_ids += await submit_many(system, 5)

    statuses = await probes.wait_all(system, order_ids, probes.TERMINAL, timeout=30)
    assert successor != leader
    assert set(statuses.values()) == {"confirmed"}
    # The restarted service did not need to take over: the successor published.
    assert probes.relay_leader(system) == successor
    assert_one_landed_swap_each(system, order_ids)


async def test_an_executor_killed_between_signing_and_confirming_lands_each_once(
    slow_chain_system: System,
) -> None:
    """Executor SIGKILLed with swaps in flight: each order confirms with one swap."""
    system = slow_chain_system
    order_ids = await submit_many(system, 5)
    await probes.wait_all(system, order_ids, {"submitted"}, timeout=15)

    with probes.restored(system, "executor"):
        probes.kill(system, "executor")
        # Nobody else records a confirmation: the kill fell inside the window.
        assert await probes.wait_all(
            system, order_ids, {"submitted"}, timeout=1
        ) == dict.fromkeys(order_ids, "submitted")
        await probes.restart(system, "executor")

    statuses = await probes.wait_all(system, order_ids, probes.TERMINAL, timeout=20)
    assert set(statuses.values()) == {"confirmed"}
    streams = await asyncio.gather(
        *(stream(system, f"/ws/orders/{o}", timeout=10) for o in order_ids)
    )
    for order_id, seen in zip(order_ids, streams, strict=True):
        assert seen.statuses == probes.HAPPY_PATH, order_id
        assert [f["version"] for f in seen.frames] == [1, 2, 3, 4, 5]
        assert seen.close_code == 1000
        # The signature that landed is the one recorded before the crash.
        swaps = probes.landed_swaps(system, order_id)
        assert [signature for signature, _ in swaps] == [seen.frames[-1]["txHash"]]
        assert probes.sent_transactions(system, order_id) == [seen.frames[-1]["txHash"]]
    assert_one_landed_swap_each(system, order_ids)


async def test_an_executor_stopped_with_swaps_in_flight_confirms_them_first(
    slow_chain_system: System,
) -> None:
    """SIGTERM with swaps in flight: the executor sees them land, then exits.

    Its confirmation poller and the chain's lander must outlive the deliveries
    that wait on them; stopped first, each delivery would wait out the graceful
    timeout unanswered and be handed to another executor after the exit.
    """
    system = slow_chain_system
    order_ids = await submit_many(system, 5)
    await probes.wait_all(system, order_ids, {"submitted"}, timeout=15)

    with probes.restored(system, "executor"):
        exit_code = await asyncio.to_thread(system.stop, "executor", signal.SIGTERM)
        # No executor runs now: whatever is confirmed, the stopped one recorded.
        statuses = await probes.wait_all(system, order_ids, probes.TERMINAL, timeout=5)

    assert exit_code in {0, -signal.SIGTERM}, "the executor had to be killed"
    assert set(statuses.values()) == {"confirmed"}
    assert_one_landed_swap_each(system, order_ids)


async def test_orders_accepted_while_the_router_is_dead_all_confirm(
    system: System,
) -> None:
    """Router SIGKILLed: orders accepted meanwhile wait and confirm after restart."""
    with probes.restored(system, "router"):
        probes.kill(system, "router")
        order_ids = await submit_many(system, 5)
        async with asyncio.timeout(10):
            # Accepted and published: the broker holds them for the router.
            while await probes.ready_messages(system, "router") < len(order_ids):
                await asyncio.sleep(0.1)
        assert {await probes.order_status(system, o) for o in order_ids} == {"pending"}
        await probes.restart(system, "router")

    statuses = await probes.wait_all(system, order_ids, probes.TERMINAL, timeout=20)
    assert set(statuses.values()) == {"confirmed"}
    streams = await asyncio.gather(
        *(stream(system, f"/ws/orders/{o}", timeout=10) for o in order_ids)
    )
    assert [s.statuses for s in streams] == [probes.HAPPY_PATH] * len(order_ids)
    assert_one_landed_swap_each(system, order_ids)
