"""Run the whole system as real processes: the harness of tests, chaos and benchmarks.

A ``System`` starts every service (``python -m <service>``) with one environment,
its own free ports per instance, any number of replicas, and logs per instance.
``env["DATABASE_URL"]`` is the schema owner's; each service logs in as its own
role (``shared.postgres.roles``), as it does in production.
Instances are named after their service (``router``), replicas get a suffix
(``router-2``); each replica of a service with a port gets a port of its own.
"""

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydantic import TypeAdapter

from shared.postgres.roles import password_variable, service_conninfo
from tools.broker import delete_namespace

SERVICES = ("gateway", "router", "executor", "notifier")
# What the harness's environment may carry that no service gets: the owner's
# credentials and the roles' passwords (each service's is in its DATABASE_URL).
_OWNER_SECRETS = frozenset(
    {"PGPASSWORD", "PGPASSFILE", "TEST_DATABASE_URL"}
    | {password_variable(service) for service in SERVICES}
)
PORT_SETTING = {
    "gateway": "GATEWAY_PORT",
    "notifier": "NOTIFIER_PORT",
    "router": "ROUTER_HTTP_PORT",
    "executor": "EXECUTOR_HTTP_PORT",
}
LISTENING = "Uvicorn running on"  # logged once a service accepts connections
_BOOL = TypeAdapter(bool)


_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()


def free_port(*, with_offsets: tuple[int, ...] = ()) -> int:
    """A port nothing listens on, below the kernel's ephemeral range; with
    ``with_offsets``, the ports that far above it are free too (and handed out
    with it: make run's replicas listen at +10, +20, ...).

    A port the kernel hands out (bind to port 0) is also one it hands to outgoing
    connections: between the pick and the service's bind, or across a restart, a
    connection to PostgreSQL or RabbitMQ from any process could take it and the
    service would fail with "address already in use". Below the ephemeral range
    only listeners bind, and each of them is checked here (on every address, so a
    port is free for a service on 127.0.0.1 and an edge proxy on 0.0.0.0 alike).
    """
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(_EPHEMERAL_RANGE.read_text().split()[0])
    candidates = [p for p in range(max(1024, low - 12000), low) if p not in _handed_out]
    random.shuffle(candidates)
    for port in candidates:
        group = [port + offset for offset in (0, *with_offsets)]
        if any(p in _handed_out or p >= low for p in group):
            continue
        if all(_bindable(p) for p in group):
            _handed_out.update(group)
            return port
    raise RuntimeError(f"no free port below the ephemeral range (from {low})")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))  # noqa: S104 - taken on any address
        except OSError:
            return False
    return True


def service_of(instance: str) -> str:
    return instance.split("-", 1)[0]


@dataclass
class System:
    env: dict[str, str]
    logs: Path
    replicas: Mapping[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    log_starts: dict[str, int] = field(default_factory=dict)  # this life's first byte

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port('gateway')}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port('notifier')}"

    def api_urls(self) -> list[str]:
        """The HTTP base URL of every gateway replica (one, if they share a port)."""
        urls = [f"http://127.0.0.1:{self.port(i)}" for i in self.instances("gateway")]
        return list(dict.fromkeys(urls))

    def ws_urls(self) -> list[str]:
        """The WebSocket base URL of every notifier replica."""
        return [f"ws://127.0.0.1:{self.port(i)}" for i in self.instances("notifier")]

    def instances(self, service: str | None = None) -> list[str]:
        names = []
        for name in SERVICES if service is None else (service,):
            count = self.replicas.get(name, 1)
            names += [name if n == 1 else f"{name}-{n}" for n in range(1, count + 1)]
        return names

    @property
    def shares_ports(self) -> bool:
        """Replicas of a service share its port (``HTTP_REUSE_PORT``, as make run),
        the setting read as the services read it."""
        return _BOOL.validate_python(self.env.get("HTTP_REUSE_PORT", False))

    def port(self, instance: str) -> int:
        key = service_of(instance) if self.shares_ports else instance
        if key not in self.ports:
            self.ports[key] = (
                int(self.env[PORT_SETTING[key]])
                if key in PORT_SETTING and PORT_SETTING[key] in self.env
                else free_port()
            )
        return self.ports[key]

    def pid(self, instance: str) -> int:
        return self.processes[instance].pid

    def start(self, instance: str) -> None:
        service = service_of(instance)
        env = {
            **{k: v for k, v in self.env.items() if k not in _OWNER_SECRETS},
            PORT_SETTING[service]: str(self.port(instance)),
            "DATABASE_URL": service_conninfo(self.env["DATABASE_URL"], service),
            # libpq's default application_name: each session says whose it is.
            "PGAPPNAME": instance,
        }
        log = (self.logs / f"{instance}.log").open("ab")
        self.log_starts[instance] = log.tell()
        self.processes[instance] = subprocess.Popen(  # noqa: S603 - our own module
            [sys.executable, "-m", service],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, instance: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port(instance)}/readyz"
        # On a shared port any replica may answer, so each one's own log tells
        # when it listens (uvicorn listens only once the app's startup is done).
        shared = self.shares_ports and self.replicas.get(service_of(instance), 1) > 1
        while time.monotonic() < deadline:
            process = self.processes[instance]
            if process.poll() is not None:
                raise RuntimeError(
                    f"{instance} exited with {process.returncode}:\n"
                    f"{self.tail(instance)}"
                )
            if shared:
                if LISTENING in self.log_since_start(instance):
                    return
            else:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url, timeout=1).status_code == 200:  # noqa: PLR2004
                        return
            time.sleep(0.2)
        raise TimeoutError(
            f"{instance} not ready after {timeout}s:\n{self.tail(instance)}"
        )

    def stop(self, instance: str, sig: int = signal.SIGTERM) -> int:
        process = self.processes.pop(instance)
        process.send_signal(sig)
        try:
            return process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def restart(self, instance: str, sig: int = signal.SIGKILL) -> None:
        self.stop(instance, sig)
        self.start(instance)
        self.wait_ready(instance)

    def log_since_start(self, instance: str) -> str:
        with (self.logs / f"{instance}.log").open("rb") as log:
            log.seek(self.log_starts.get(instance, 0))
            return log.read().decode(errors="replace")

    def tail(self, instance: str, lines: int = 40) -> str:
        path = self.logs / f"{instance}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def running_system(
    *,
    database_url: str,
    amqp_url: str,
    namespace: str,
    logs: Path,
    settings: Mapping[str, str] | None = None,
    replicas: Mapping[str, int] | None = None,
) -> Iterator[System]:
    """Start every instance, wait until all are ready, stop them all at the end."""
    logs.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "BROKER_NAMESPACE": namespace,
        "LOG_FORMAT": "json",
        "HTTP_HOST": "127.0.0.1",
        **(settings or {}),
    }
    system = System(env=env, logs=logs, replicas=dict(replicas or {}))
    env["NOTIFIER_PUBLIC_URL"] = system.ws_url
    try:
        for instance in system.instances():
            system.start(instance)
        for instance in system.instances():
            system.wait_ready(instance)
        yield system
    finally:
        for instance in list(system.processes):
            with contextlib.suppress(Exception):
                system.stop(instance)
        with contextlib.suppress(Exception):
            delete_namespace(amqp_url, namespace)
