"""Test infrastructure: real PostgreSQL and RabbitMQ, isolated per run.

Where a Docker engine answers, testcontainers starts both, whatever the
environment says. Otherwise the URLs come from ``TEST_DATABASE_URL`` and
``TEST_AMQP_URL`` (``make test`` sets them to the local servers). A missing service
fails the run:
integration tests are never skipped. Each run gets its own database and its own
exchange and queue names, so runs never see each other's data.
"""

import contextlib
import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from shared.postgres.roles import SERVICE_ROLES, password_variable
from shared.settings import Settings
from tools import databases
from tools.broker import delete_namespace

RUN_ID = uuid.uuid4().hex[:10]


def _docker_answers() -> bool:
    try:
        import docker  # noqa: PLC0415 - only needed when probing for an engine

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def infrastructure() -> Iterator[tuple[str, str]]:
    """(server URL of PostgreSQL, URL of RabbitMQ)."""
    if not _docker_answers():
        pg_url = os.environ.get("TEST_DATABASE_URL")
        amqp_url = os.environ.get("TEST_AMQP_URL")
        if not (pg_url and amqp_url):
            pytest.fail(
                "No PostgreSQL/RabbitMQ: run a Docker engine for testcontainers "
                "or set TEST_DATABASE_URL and TEST_AMQP_URL"
            )
        yield pg_url, amqp_url
        return
    from testcontainers.postgres import PostgresContainer  # noqa: PLC0415
    from testcontainers.rabbitmq import RabbitMqContainer  # noqa: PLC0415

    with (
        PostgresContainer("postgres:15-alpine", driver=None) as pg,
        RabbitMqContainer("rabbitmq:3.10-management-alpine") as rabbit,
        pytest.MonkeyPatch.context() as env,
    ):
        amqp = (
            f"amqp://{rabbit.username}:{rabbit.password}@"
            f"{rabbit.get_container_host_ip()}:{rabbit.get_exposed_port(5672)}/"
        )
        server_url = pg.get_connection_url()
        # The container asks every login for a password: the services' roles
        # are made up front with one (as an operator would) and the harness
        # hands it to them (shared.postgres.roles).
        _create_service_roles(server_url, pg.password)
        for service in SERVICE_ROLES:
            env.setenv(password_variable(service), pg.password)
        yield server_url, amqp


def _create_service_roles(server_url: str, password: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        for role in SERVICE_ROLES.values():
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN NOINHERIT PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )


@contextlib.contextmanager
def fresh_database(
    server_url: str, name: str, *, migrated: bool = True
) -> Iterator[str]:
    """Database ``oe_test_<run>_<name>``, migrated unless told not to, dropped
    afterwards."""
    with databases.fresh_database(
        server_url, f"oe_test_{RUN_ID}_{name}", migrated=migrated
    ) as url:
        yield url


@pytest.fixture(scope="session")
def database_url(infrastructure: tuple[str, str]) -> Iterator[str]:
    """A fresh database for this run, migrated, dropped afterwards."""
    with fresh_database(infrastructure[0], "main") as url:
        yield url


@pytest.fixture(scope="session")
def amqp_url(infrastructure: tuple[str, str]) -> str:
    return infrastructure[1]


@pytest.fixture(scope="session")
def broker_namespace(amqp_url: str) -> Iterator[str]:
    """Every exchange and queue of this run carries this prefix; removed at the end.

    Durable quorum queues outlive the run; left behind, they pile up run after run
    until the broker slows down.
    """
    namespace = f"oe-test-{RUN_ID}"
    yield namespace
    delete_namespace(amqp_url, namespace)


@pytest.fixture(scope="session")
def settings(database_url: str, amqp_url: str, broker_namespace: str) -> Settings:
    """Settings for services under test: fast simulated latencies, no faults."""
    return Settings(
        database_url=database_url,
        amqp_url=amqp_url,
        broker_namespace=broker_namespace,
        log_format="console",
        quote_delay_ms=20,
        quote_failure_rate=0.0,
        slot_ms=50,
        blockhash_valid_slots=20,
        confirm_min_ms=100,
        confirm_max_ms=200,
        rebroadcast_ms=100,
        fault_network_rate=0.0,
        fault_slippage_rate=0.0,
        backoff_base_ms=50,
        relay_poll_ms=50,
    )
