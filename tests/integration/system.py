"""The whole system as processes for end-to-end tests, with fast simulated latencies.

The harness itself lives in ``tools.system``; tests start it with settings that
make the simulated venues and chain fast and fault-free unless a test asks.
"""

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path

from tools.system import (
    PORT_SETTING,
    SERVICES,
    System,
    free_port,
    running_system as _running_system,
)

__all__ = ["PORT_SETTING", "SERVICES", "System", "free_port", "running_system"]

FAST = {
    "QUOTE_DELAY_MS": "20",
    "QUOTE_FAILURE_RATE": "0",
    "SLOT_MS": "50",
    "BLOCKHASH_VALID_SLOTS": "40",
    "CONFIRM_MIN_MS": "100",
    "CONFIRM_MAX_MS": "200",
    "REBROADCAST_MS": "100",
    "FAULT_NETWORK_RATE": "0",
    "FAULT_SLIPPAGE_RATE": "0",
    "FAULT_DROP_RATE": "0",
    "BACKOFF_BASE_MS": "50",
    "RELAY_POLL_MS": "50",
}


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
    with _running_system(
        database_url=database_url,
        amqp_url=amqp_url,
        namespace=namespace,
        logs=logs,
        settings={**FAST, **(settings or {})},
        replicas=replicas,
    ) as system:
        yield system
