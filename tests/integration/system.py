"""Run the whole system as real processes for end-to-end tests.

Each ``System`` starts the four services (``python -m <service>``) with its own
database, its own broker namespace and free ports, waits until every service is
ready, and stops them at the end.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SERVICES = ("gateway", "router", "executor", "notifier")
PORT_SETTING = {
    "gateway": "GATEWAY_PORT",
    "notifier": "NOTIFIER_PORT",
    "router": "ROUTER_HTTP_PORT",
    "executor": "EXECUTOR_HTTP_PORT",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class System:
    env: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.env['GATEWAY_PORT']}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.env['NOTIFIER_PORT']}"

    def port(self, service: str) -> int:
        return int(self.env[PORT_SETTING[service]])

    def start(self, service: str) -> None:
        log = (self.logs / f"{service}.log").open("ab")
        self.processes[service] = subprocess.Popen(  # noqa: S603 - our own module
            [sys.executable, "-m", service],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, service: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port(service)}/readyz"
        while time.monotonic() < deadline:
            process = self.processes[service]
            if process.poll() is not None:
                raise RuntimeError(
                    f"{service} exited with {process.returncode}:\n{self.tail(service)}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(
            f"{service} not ready after {timeout}s:\n{self.tail(service)}"
        )

    def stop(self, service: str, sig: int = signal.SIGTERM) -> int:
        process = self.processes.pop(service)
        process.send_signal(sig)
        try:
            return process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def tail(self, service: str, lines: int = 40) -> str:
        path = self.logs / f"{service}.log"
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
) -> Iterator[System]:
    logs.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "BROKER_NAMESPACE": namespace,
        "LOG_FORMAT": "json",
        "HTTP_HOST": "127.0.0.1",
        "QUOTE_DELAY_MS": "20",
        "QUOTE_FAILURE_RATE": "0",
        "SLOT_MS": "50",
        "BLOCKHASH_VALID_SLOTS": "40",
        "CONFIRM_MIN_MS": "100",
        "CONFIRM_MAX_MS": "200",
        "REBROADCAST_MS": "100",
        "FAULT_NETWORK_RATE": "0",
        "FAULT_SLIPPAGE_RATE": "0",
        "BACKOFF_BASE_MS": "50",
        "RELAY_POLL_MS": "50",
        **{setting: str(free_port()) for setting in PORT_SETTING.values()},
        **(settings or {}),
    }
    env["NOTIFIER_PUBLIC_URL"] = f"ws://127.0.0.1:{env['NOTIFIER_PORT']}"
    system = System(env=env, logs=logs)
    try:
        for service in SERVICES:
            system.start(service)
        for service in SERVICES:
            system.wait_ready(service)
        yield system
    finally:
        for service in list(system.processes):
            system.stop(service)
