"""`make run`, the README's first command: it migrates an empty database, starts
every service with the replicas asked for, each logged in as its own role, on the
ports the settings name (from .env, or given to make), prints where the dashboard
is, carries an order to confirmed, and stops on Ctrl-C."""

import os
import re
import signal
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from shared.postgres.roles import SERVICE_ROLES
from shared.settings import Settings
from tests.conftest import fresh_database
from tests.integration import probes
from tests.integration.clients import stream, submit
from tests.integration.system import FAST, System, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SETTING_NAMES = {name.upper() for name in Settings.model_fields}
READY_TIMEOUT_S = 90.0
REPLICAS = {"gateway": 1, "router": 2, "executor": 1, "notifier": 1}


@dataclass(frozen=True)
class Made:
    system: System
    database_url: str
    log: Path
    make: subprocess.Popen[bytes]
    health: list[str]


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == httpx.codes.OK
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def made(
    infrastructure: tuple[str, str],
    database_url: str,  # its migration creates (and admits) the services' roles
    broker_namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Made]:
    """`make run ROUTERS=2` on an empty database."""
    server_url, amqp_url = infrastructure
    ports = {
        "GATEWAY_PORT": free_port(),
        "NOTIFIER_PORT": free_port(),
        # The second router listens 10 above (tools/run-service).
        "ROUTER_HTTP_PORT": free_port(with_offsets=(10,)),
        "EXECUTOR_HTTP_PORT": free_port(),
    }
    log = tmp_path_factory.mktemp("make-run") / "make-run.log"
    # A checkout of its own, so that its .env is this run's: the gateway's port
    # comes from there, the notifier's from make's command line.
    checkout = tmp_path_factory.mktemp("checkout")
    for entry in ROOT.iterdir():
        if entry.name != ".env":
            (checkout / entry.name).symlink_to(entry)
    (checkout / ".env").write_text(f"GATEWAY_PORT={ports['GATEWAY_PORT']}\n")
    with fresh_database(server_url, "make_run", migrated=False) as conninfo:
        # A URL, as a user writes DATABASE_URL (make hands it on as one word).
        dbname = psycopg.conninfo.conninfo_to_dict(conninfo)["dbname"]
        run_url = urllib.parse.urlsplit(server_url)._replace(path=f"/{dbname}").geturl()
        # The shell's settings would leak into the services: only this run's.
        base = {k: v for k, v in os.environ.items() if k.upper() not in SETTING_NAMES}
        env = {
            **base,
            **FAST,
            **{key: str(port) for key, port in ports.items()},
            "DATABASE_URL": run_url,
            "AMQP_URL": amqp_url,
            "BROKER_NAMESPACE": f"{broker_namespace}-make-run",
        }
        given = {
            k: v for k, v in env.items() if k not in {"GATEWAY_PORT", "NOTIFIER_PORT"}
        }
        with log.open("wb") as output:
            make = subprocess.Popen(  # noqa: S603 - the README's own command
                [  # noqa: S607 - make from PATH, as a user runs it
                    "make",
                    "--no-print-directory",
                    "run",
                    *(f"{s.upper()}S={n}" for s, n in REPLICAS.items()),
                    f"NOTIFIER_PORT={ports['NOTIFIER_PORT']}",
                ],
                cwd=checkout,
                env=given,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the whole group
            )
        system = System(env=env, logs=log.parent, replicas=REPLICAS)
        routers = [
            ports["ROUTER_HTTP_PORT"] + 10 * n for n in range(REPLICAS["router"])
        ]
        health = [
            f"http://127.0.0.1:{port}/readyz"
            for port in (
                ports["GATEWAY_PORT"],
                ports["NOTIFIER_PORT"],
                ports["EXECUTOR_HTTP_PORT"],
                *routers,
            )
        ]
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while not all(_ready(url) for url in health):
                assert make.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
            yield Made(system, run_url, log, make, health)
        finally:
            if make.poll() is None:
                os.killpg(make.pid, signal.SIGINT)
                try:
                    make.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(make.pid, signal.SIGKILL)
                    make.wait()


async def test_make_run_prints_the_dashboard_and_confirms_an_order(
    made: Made,
) -> None:
    system, log = made.system, made.log
    printed = re.search(r"Dashboard: (http://\S+)", log.read_text())
    assert printed, log.read_text()[-3000:]
    assert printed.group(1) == f"http://localhost:{system.port('gateway')}/"
    assert f"WebSocket: ws://localhost:{system.port('notifier')}\n" in log.read_text()
    dashboard = httpx.get(printed.group(1), timeout=5)
    assert dashboard.status_code == 200
    assert dashboard.headers["content-type"].startswith("text/html")

    answer = await submit(system, probes.ORDER)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["links"]["ws"].startswith(f"ws://localhost:{system.port('notifier')}/")
    assert (await stream(system, f"/ws/orders/{body['orderId']}")).statuses == (
        probes.HAPPY_PATH
    )


def test_make_run_logs_each_process_in_as_its_services_role(
    made: Made,
) -> None:
    assert probes.logins(made.database_url) == {
        (f"{service}.{n}", role)
        for service, role in SERVICE_ROLES.items()
        for n in range(1, REPLICAS[service] + 1)
    }


def test_ctrl_c_stops_every_process(made: Made) -> None:
    """Last in this module: it stops the system the others ran on."""
    os.killpg(made.make.pid, signal.SIGINT)
    made.make.wait(timeout=30)
    assert not any(_ready(url) for url in made.health)
    with pytest.raises(ProcessLookupError):
        os.killpg(made.make.pid, 0)  # no process of the group is left
