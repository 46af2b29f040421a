"""Fixtures that run the whole system as processes, and a pool on the run's store."""

from collections.abc import AsyncIterator, Iterator

import pytest

from shared.eventstore.pool import Pool, open_pool
from tests.integration.system import System, isolated_system

# A chain that takes 1.5-2 s to land, with blockhashes valid for 20 s.
SLOW_CHAIN = {
    "CONFIRM_MIN_MS": "1500",
    "CONFIRM_MAX_MS": "2000",
    "BLOCKHASH_VALID_SLOTS": "400",
}
# The slow chain with room for two orders in flight.
ROOM_FOR_TWO = {**SLOW_CHAIN, "MAX_ORDERS_IN_FLIGHT": "2"}
# Room for 256 events per WebSocket subscriber and a 16 KiB kernel send buffer per
# connection (Linux doubles it): a client that stops reading is certain to
# overflow, where on loopback the kernel would otherwise hold MiBs for it. A client
# that reads nothing for 3 s is dropped, so a test can wait for it.
WS_STALLED_CLIENT_TIMEOUT_S = 3
SMALL_WS_BUFFER = {
    "WS_SUBSCRIBER_BUFFER": "256",
    "WS_SEND_BUFFER_BYTES": "16384",
    "WS_STALLED_CLIENT_TIMEOUT_S": str(WS_STALLED_CLIENT_TIMEOUT_S),
}


@pytest.fixture(scope="session")
def system(infrastructure: tuple[str, str], broker_namespace: str) -> Iterator[System]:
    """The four services, healthy, with fast simulated latencies and no faults."""
    with isolated_system(infrastructure, broker_namespace, "flow") as running:
        yield running


@pytest.fixture(scope="module")
def fuzz_system(
    infrastructure: tuple[str, str], broker_namespace: str
) -> Iterator[System]:
    """The four services with admission control off: valid orders are never
    refused for capacity (a 503 the API documents), so any 5xx is a defect."""
    with isolated_system(
        infrastructure, broker_namespace, "fuzz", {"MAX_ORDERS_IN_FLIGHT": "0"}
    ) as running:
        yield running


@pytest.fixture(scope="module")
def small_buffer_system(
    infrastructure: tuple[str, str], broker_namespace: str
) -> Iterator[System]:
    """The four services with SMALL_WS_BUFFER."""
    with isolated_system(
        infrastructure, broker_namespace, "small_ws_buffer", SMALL_WS_BUFFER
    ) as running:
        yield running


@pytest.fixture(scope="module")
def slippage_system(
    infrastructure: tuple[str, str], broker_namespace: str
) -> Iterator[System]:
    """The four services where a competing trade always moves the pool first."""
    with isolated_system(
        infrastructure, broker_namespace, "slippage", {"FAULT_SLIPPAGE_RATE": "1.0"}
    ) as running:
        yield running


@pytest.fixture(scope="module")
def slow_chain_system(
    infrastructure: tuple[str, str], broker_namespace: str
) -> Iterator[System]:
    """The four services on a chain that takes 1.5-2 s to land a transaction.

    Blockhashes stay valid for 20 s, so an executor restart while transactions
    are in flight does not expire them: every order should land on attempt 1.
    """
    with isolated_system(
        infrastructure, broker_namespace, "slowchain", SLOW_CHAIN
    ) as running:
        yield running


@pytest.fixture(scope="module")
def admission_system(
    infrastructure: tuple[str, str], broker_namespace: str
) -> Iterator[System]:
    """The slow chain with room for two orders in flight.

    The read model trails by a second, so orders it has not projected yet must
    still count against the limit.
    """
    settings = {**ROOM_FOR_TWO, "PROJECTION_LINGER_MS": "1000"}
    with isolated_system(
        infrastructure, broker_namespace, "admission", settings
    ) as running:
        yield running


@pytest.fixture(scope="module")
def two_gateway_admission_system(
    infrastructure: tuple[str, str], broker_namespace: str
) -> Iterator[System]:
    """Room for two orders, two gateways, and a read model five seconds behind."""
    settings = {**ROOM_FOR_TWO, "PROJECTION_LINGER_MS": "5000", "DB_POOL_SIZE": "4"}
    with isolated_system(
        infrastructure,
        broker_namespace,
        "admission2",
        settings,
        replicas={"gateway": 2},
    ) as running:
        yield running


@pytest.fixture(scope="session")
async def es_pool(database_url: str) -> AsyncIterator[Pool]:
    """A pool on this run's database, for tests of the store and the read models."""
    pool = open_pool(database_url, min_size=2, max_size=24, name="es-tests")
    await pool.open(wait=True)
    yield pool
    await pool.close()
