"""docker-compose.yml's commands and environments start working services.

No Docker engine runs in CI (docs/adr/0002-compose-without-docker.md). Instead each
compose service's command (its ``command``, or the CMD of its Dockerfile) runs here
as a local process with the compose environment, pointed at this run's database and
broker namespace. A wrong module path, port or variable name in compose fails here.
"""

import asyncio
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from shared.postgres.roles import SERVICE_ROLES, service_conninfo
from shared.settings import Settings
from tests.conftest import fresh_database
from tests.integration import probes
from tests.integration.clients import stream
from tests.integration.system import System, free_port
from tools.broker import delete_namespace

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "shared" / "src" / "shared" / "migrations" / "sql"
PORT_SETTING = {
    "gateway": "GATEWAY_PORT",
    "notifier": "NOTIFIER_PORT",
    "router": "ROUTER_HTTP_PORT",
    "executor": "EXECUTOR_HTTP_PORT",
}
SETTING_NAMES = {name.upper() for name in Settings.model_fields}
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 25.0
MIGRATE_TIMEOUT_S = 60.0
CLEAN_EXITS = {0, -signal.SIGTERM}
INTERPOLATION = re.compile(r"\$\$|\$\{(\w+)(?::?-([^}]*))?\}|\$(\w+)")


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def _interpolate(value: object) -> str:
    """Compose variable substitution with the defaults written in the file.

    The host's variables are ignored on purpose: the test checks the file itself.
    """

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        default = match.group(2)
        assert default is not None, f"{match.group(0)} has no default in compose"
        return default

    return INTERPOLATION.sub(substitute, str(value))


def _dockerfile_cmd(dockerfile: Path) -> list[str]:
    for line in dockerfile.read_text().splitlines():
        if line.startswith("CMD "):
            command: list[str] = json.loads(line.removeprefix("CMD "))
            return command
    pytest.fail(f"{dockerfile} has no exec-form CMD")


def _command(name: str, service: dict[str, Any]) -> list[str]:
    """The container's command: compose `command`, else the Dockerfile's CMD."""
    command = service.get("command")
    if command is None:
        build = service.get("build")
        assert build is not None, f"compose {name} has neither command nor build"
        command = _dockerfile_cmd(ROOT / build["context"] / build["dockerfile"])
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    assert argv[0] == "python", f"compose {name} does not run python: {argv}"
    return [sys.executable, *argv[1:]]


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("0.0.0.0", port))  # noqa: S104 - where the services bind
        except OSError:
            return False
    return True


def _check_points_at(
    compose: dict[str, Any], url: str, image_prefix: str, port: int
) -> None:
    """The compose URL names a compose service running `image_prefix` on `port`."""
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname
    assert host in compose["services"], f"{url}: {host!r} is not a compose service"
    assert compose["services"][host]["image"].startswith(image_prefix), url
    assert (parsed.port or port) == port, url


def _environment(
    name: str, compose: dict[str, Any], test_run: dict[str, str]
) -> dict[str, str]:
    """The compose environment, pointed at this test run's database and broker."""
    declared = compose["services"][name].get("environment", {})
    assert isinstance(declared, dict), f"compose {name}: environment as a mapping"
    environment = {key: _interpolate(value) for key, value in declared.items()}
    unknown = set(environment) - SETTING_NAMES
    assert not unknown, f"compose {name} sets unknown settings {sorted(unknown)}"

    _check_points_at(compose, environment["DATABASE_URL"], "postgres:", 5432)
    _check_points_at(compose, environment["AMQP_URL"], "rabbitmq:", 5672)
    login = urllib.parse.urlsplit(environment["DATABASE_URL"]).username
    assert login == SERVICE_ROLES.get(name, "postgres"), (
        f"compose {name} logs in to PostgreSQL as {login!r}"
    )
    environment.update(test_run)
    if name in SERVICE_ROLES:
        environment["DATABASE_URL"] = service_conninfo(test_run["DATABASE_URL"], name)

    # A container sees only its own environment: drop the host's settings.
    base = {k: v for k, v in os.environ.items() if k.upper() not in SETTING_NAMES}
    return {**base, **environment}


def _tail(log: Path, lines: int = 40) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - local http
            status: int = response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return 0
    return status


@pytest.fixture
def compose() -> dict[str, Any]:
    return _compose()


@pytest.fixture(scope="module")
def test_run(
    infrastructure: tuple[str, str], broker_namespace: str
) -> Iterator[dict[str, str]]:
    """Settings that point a process at a database and broker names of its own:
    the session's database holds the store tests' streams, which are no orders."""
    server_url, amqp_url = infrastructure
    namespace = f"{broker_namespace}-compose"
    with fresh_database(server_url, "compose") as database_url:
        yield {
            "DATABASE_URL": database_url,
            "AMQP_URL": amqp_url,
            "BROKER_NAMESPACE": namespace,
        }
    delete_namespace(amqp_url, namespace)


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; any still running at teardown are killed."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def _applied_migrations(database_url: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT version FROM public.schema_migrations ORDER BY version"
        ).fetchall()
    return [version for (version,) in rows]


def test_migrate_command_migrates_an_empty_database_then_does_nothing(
    compose: dict[str, Any],
    tmp_path: Path,
    infrastructure: tuple[str, str],
    test_run: dict[str, str],
) -> None:
    """The one-shot migrate command applies every migration to an empty database,
    and run again on it, succeeds and applies none."""
    service = compose["services"]["migrate"]
    command = _command("migrate", service)
    every_migration = sorted(path.stem for path in MIGRATIONS.glob("*.sql"))
    with fresh_database(infrastructure[0], "migrate_cmd", migrated=False) as empty:
        env = _environment("migrate", compose, {**test_run, "DATABASE_URL": empty})
        for attempt in (1, 2):
            result = subprocess.run(  # noqa: S603 - the compose file's own command
                command,
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=MIGRATE_TIMEOUT_S,
                check=False,
            )
            assert result.returncode == 0, (
                f"`{shlex.join(command)}` (run {attempt}) exited"
                f" {result.returncode}:\n"
                f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
            assert _applied_migrations(empty) == every_migration, attempt


def _healthcheck_argv(test: list[str] | str) -> list[str]:
    """A compose/Dockerfile healthcheck as argv with python replaced by this one."""
    if isinstance(test, str):
        argv = ["sh", "-c", test]
    elif test[0] == "CMD-SHELL":
        argv = ["sh", "-c", test[1]]
    else:
        assert test[0] == "CMD", f"unsupported healthcheck {test}"
        argv = list(test[1:])
    if argv[0] == "python":
        argv[0] = sys.executable
    return argv


def _dockerfile_healthcheck(dockerfile: Path) -> list[str]:
    text = dockerfile.read_text().replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK\b.*?\bCMD\s+(\[.*\])\s*$", text, re.MULTILINE)
    assert match, f"{dockerfile} has no exec-form HEALTHCHECK"
    return ["CMD", *json.loads(match.group(1))]


@pytest.mark.parametrize("name", list(PORT_SETTING))
def test_compose_service_starts_becomes_ready_and_stops_cleanly(
    name: str,
    compose: dict[str, Any],
    tmp_path: Path,
    started: list[subprocess.Popen[bytes]],
    test_run: dict[str, str],
) -> None:
    """Its compose command and env pass /healthz, /readyz, healthchecks; SIGTERM: 0."""
    service = compose["services"][name]
    command = _command(name, service)
    env = _environment(name, compose, test_run)
    setting = PORT_SETTING[name]
    assert setting in env, f"compose {name} does not set its port {setting}"
    port = int(env[setting])
    if not _port_is_free(port):
        port = free_port()
        env[setting] = str(port)

    log = tmp_path / f"{name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - the compose file's own command
            command, env=env, cwd=tmp_path, stdout=output, stderr=subprocess.STDOUT
        )
    started.append(process)
    where = f"`{shlex.join(command)}` ({setting}={port})"

    deadline = time.monotonic() + READY_TIMEOUT_S
    statuses = {"/healthz": 0, "/readyz": 0}
    while True:
        if process.poll() is not None:
            pytest.fail(
                f"{where} exited with {process.returncode} before it was ready; "
                f"output tail:\n{_tail(log)}"
            )
        for path, status in statuses.items():
            if status != 200:
                statuses[path] = _get(f"http://127.0.0.1:{port}{path}")
        if all(status == 200 for status in statuses.values()):
            break
        if time.monotonic() > deadline:
            pytest.fail(
                f"{where} not ready within {READY_TIMEOUT_S:.0f}s "
                f"(last statuses {statuses}); output tail:\n{_tail(log)}"
            )
        time.sleep(0.25)

    build = service["build"]
    checks = {
        "compose healthcheck": service["healthcheck"]["test"],
        "Dockerfile HEALTHCHECK": _dockerfile_healthcheck(
            ROOT / build["context"] / build["dockerfile"]
        ),
    }
    for label, test in checks.items():
        check = subprocess.run(  # noqa: S603 - the compose file's own healthcheck
            _healthcheck_argv(test),
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert check.returncode == 0, f"{name} {label} failed:\n{check.stderr[-2000:]}"

    process.send_signal(signal.SIGTERM)
    try:
        returncode = process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        pytest.fail(
            f"{where} ignored SIGTERM for {STOP_TIMEOUT_S:.0f}s; "
            f"output tail:\n{_tail(log)}"
        )
    # uvicorn re-raises the signal it caught once shutdown is complete, so death by
    # SIGTERM after a graceful stop counts as clean (docker reports 143), like 0.
    assert returncode in CLEAN_EXITS, (
        f"{where} exited {returncode} on SIGTERM; output tail:\n{_tail(log)}"
    )
    assert "Traceback" not in log.read_text(errors="replace"), (
        f"{where} logged a traceback; output tail:\n{_tail(log)}"
    )


NGINX = "/usr/sbin/nginx"  # Debian's nginx; .ci/run installs it
EDGE_TEMPLATE_TARGET = "/etc/nginx/templates/"


def _edge_config(compose: dict[str, Any], overrides: dict[str, str]) -> str:
    """The edge's template filled in as the nginx image does at start.

    The image substitutes only variables set in the container's environment, so
    nginx's own ``$variables`` stay; every ``${...}`` must be a compose setting.
    """
    edge = compose["services"]["edge"]
    (source,) = (
        volume.split(":")[0]
        for volume in edge["volumes"]
        if volume.split(":")[1].startswith(EDGE_TEMPLATE_TARGET)
    )
    text: str = (ROOT / str(source)).read_text()
    environment = {
        key: _interpolate(value) for key, value in edge["environment"].items()
    }
    for key, value in {**environment, **overrides}.items():
        text = text.replace("${" + key + "}", value)
    unset = re.findall(r"\$\{\w+\}", text)
    assert not unset, f"the edge template uses {unset}, which compose does not set"
    return text


def test_the_edge_proxies_the_api_dashboard_and_websockets(
    compose: dict[str, Any],
    system: System,
    tmp_path: Path,
    started: list[subprocess.Popen[bytes]],
) -> None:
    """Through compose's edge config: an order is placed and followed to confirmed."""
    api_port, ws_port = free_port(), free_port()
    (tmp_path / "default.conf").write_text(
        _edge_config(
            compose,
            {
                "EDGE_RESOLVER": "127.0.0.1",
                "EDGE_API_PORT": str(api_port),
                "EDGE_WS_PORT": str(ws_port),
                "GATEWAY_UPSTREAM": f"127.0.0.1:{system.port('gateway')}",
                "NOTIFIER_UPSTREAM": f"127.0.0.1:{system.port('notifier')}",
            },
        )
    )
    # The image's main config, reduced to what a run in a folder of its own needs;
    # one process, so nothing outlives it when a failing test kills it.
    (tmp_path / "nginx.conf").write_text(
        "master_process off;\n"
        "user root;\n"
        f"pid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log warn;\n"
        "events {}\n"
        "http {\n"
        f"    client_body_temp_path {tmp_path}/client_body;\n"
        f"    proxy_temp_path {tmp_path}/proxy;\n"
        f"    fastcgi_temp_path {tmp_path}/fastcgi;\n"
        f"    uwsgi_temp_path {tmp_path}/uwsgi;\n"
        f"    scgi_temp_path {tmp_path}/scgi;\n"
        f"    include {tmp_path}/default.conf;\n"
        "}\n"
    )
    edge = subprocess.Popen(  # noqa: S603 - Debian's nginx with the compose config
        [
            NGINX,
            "-p",
            str(tmp_path),
            "-c",
            str(tmp_path / "nginx.conf"),
            "-g",
            "daemon off;",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    started.append(edge)
    api = f"http://127.0.0.1:{api_port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while _get(f"{api}/healthz") != 200:
        assert edge.poll() is None, _tail(tmp_path / "error.log")
        assert time.monotonic() < deadline, _tail(tmp_path / "error.log")
        time.sleep(0.1)

    with urllib.request.urlopen(f"{api}/", timeout=5) as page:  # noqa: S310 - local
        assert page.status == 200
        assert "text/html" in page.headers["Content-Type"]
    request = urllib.request.Request(  # noqa: S310 - local
        f"{api}/api/orders/execute",
        data=json.dumps(probes.ORDER).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - local
        assert answer.status == 202
        order_id = json.loads(answer.read())["orderId"]

    followed = asyncio.run(
        stream(system, f"/ws/orders/{order_id}", ws_url=f"ws://127.0.0.1:{ws_port}")
    )

    assert followed.statuses == probes.HAPPY_PATH
    edge.send_signal(signal.SIGQUIT)  # nginx's graceful stop
    assert edge.wait(timeout=STOP_TIMEOUT_S) == 0
