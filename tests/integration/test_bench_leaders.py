"""The benchmark says which process leads each lock, so CPU per service reads right.

The relay, the read models and the chain's lander run in whichever process takes
their lock first; a benchmark that did not say so would show their CPU moving
from one service to another between two runs of the same work.
"""

import time

import pytest

from tests.integration.system import System
from tools.bench import leaders

pytestmark = pytest.mark.integration

LOCKS = {
    "relay",
    "chain:lander",
    "projection:gateway.orders_view",
    "projection:executor.in_flight",
}


def test_each_lock_is_led_by_a_running_instance_of_its_service(system: System) -> None:
    deadline = time.monotonic() + 15
    led = leaders(system)
    while set(led) != LOCKS and time.monotonic() < deadline:
        time.sleep(0.2)
        led = leaders(system)

    assert set(led) == LOCKS
    assert set(led.values()) <= set(system.processes)
    assert led["projection:gateway.orders_view"].startswith("gateway")
    assert led["projection:executor.in_flight"].startswith("executor")
    assert led["chain:lander"].startswith("executor")
