"""The whole system as processes for end-to-end tests, each on its own database.

The harness itself lives in ``tools.system``; tests start it through
``isolated_system``: a fresh migrated database, a broker namespace and a log folder
of its own, and settings that make the simulated venues and chain fast and
fault-free unless a test asks otherwise.
"""

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path

from tests.conftest import fresh_database
from tools.system import PORT_SETTING, SERVICES, System, free_port, running_system

__all__ = [
    "OUTPUT",
    "PORT_SETTING",
    "SERVICES",
    "System",
    "free_port",
    "isolated_system",
]

OUTPUT = Path(__file__).resolve().parents[2] / "test-output"

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
def isolated_system(
    infrastructure: tuple[str, str],
    namespace: str,
    name: str,
    settings: Mapping[str, str] | None = None,
    replicas: Mapping[str, int] | None = None,
) -> Iterator[System]:
    """The four services on database ``…_<name>``, namespace ``<namespace>-<name>``."""
    server_url, amqp_url = infrastructure
    with (
        fresh_database(server_url, name) as database_url,
        running_system(
            database_url=database_url,
            amqp_url=amqp_url,
            namespace=f"{namespace}-{name}",
            logs=OUTPUT / "logs" / name,
            settings={**FAST, **(settings or {})},
            replicas=replicas,
        ) as system,
    ):
        yield system
