"""Fixtures that run the whole system as processes."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import fresh_database
from tests.integration.system import System, running_system

OUTPUT = Path(__file__).resolve().parents[2] / "test-output"


@pytest.fixture(scope="session")
def system(infrastructure: tuple[str, str], broker_namespace: str) -> Iterator[System]:
    """The four services, healthy, with fast simulated latencies and no faults."""
    server_url, amqp_url = infrastructure
    with (
        fresh_database(server_url, "flow") as database_url,
        running_system(
            database_url=database_url,
            amqp_url=amqp_url,
            namespace=f"{broker_namespace}-flow",
            logs=OUTPUT / "logs" / "flow",
        ) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def slippage_system(
    infrastructure: tuple[str, str], broker_namespace: str
) -> Iterator[System]:
    """The four services where a competing trade always moves the pool first."""
    server_url, amqp_url = infrastructure
    with (
        fresh_database(server_url, "slippage") as database_url,
        running_system(
            database_url=database_url,
            amqp_url=amqp_url,
            namespace=f"{broker_namespace}-slippage",
            logs=OUTPUT / "logs" / "slippage",
            settings={"FAULT_SLIPPAGE_RATE": "1.0"},
        ) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def slow_chain_system(
    infrastructure: tuple[str, str], broker_namespace: str
) -> Iterator[System]:
    """The four services on a chain that takes 1.5-2 s to land a transaction.

    Blockhashes stay valid for 20 s, so an executor restart while transactions
    are in flight does not expire them: every order should land on attempt 1.
    """
    server_url, amqp_url = infrastructure
    with (
        fresh_database(server_url, "slowchain") as database_url,
        running_system(
            database_url=database_url,
            amqp_url=amqp_url,
            namespace=f"{broker_namespace}-slowchain",
            logs=OUTPUT / "logs" / "slowchain",
            settings={
                "CONFIRM_MIN_MS": "1500",
                "CONFIRM_MAX_MS": "2000",
                "BLOCKHASH_VALID_SLOTS": "400",
            },
        ) as running,
    ):
        yield running
