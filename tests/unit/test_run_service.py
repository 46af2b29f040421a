"""make run's launcher gives each router and executor replica its own port."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _port_given(tmp_path: Path, service: str, process: str, env_file: str) -> str:
    """The health port tools/run-service hands the ``process`` replica."""
    # A stand-in for the service itself: it says which port it was given.
    fake = tmp_path / "bin" / "python"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(
        "#!/usr/bin/env bash\n"
        f'if [ "$1" = -m ] && [ "$2" = {service} ]; then\n'
        f'  echo "${{{service.upper()}_HTTP_PORT}}"; exit 0\n'
        "fi\n"
        f'exec {sys.executable} "$@"\n'
    )
    fake.chmod(0o755)
    (tmp_path / ".env").write_text(env_file)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_HTTP_PORT")} | {
        "PATH": f"{fake.parent}:{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "HONCHO_PROCESS_NAME": process,
    }
    done = subprocess.run(  # noqa: S603 - the project's own script
        [ROOT / "tools" / "run-service", service],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("service", "env_file", "first", "third"),
    [
        ("router", "", "3002", "3022"),
        ("router", "ROUTER_HTTP_PORT=4002\n", "4002", "4022"),
        ("executor", "EXECUTOR_HTTP_PORT=5003\n", "5003", "5023"),
    ],
)
def test_replicas_count_up_from_the_port_the_settings_give(
    tmp_path: Path, service: str, env_file: str, first: str, third: str
) -> None:
    """Ten apart from the first replica's, which a .env moves as it moves the
    service's own setting."""
    assert _port_given(tmp_path, service, f"{service}.1", env_file) == first
    assert _port_given(tmp_path, service, f"{service}.3", env_file) == third
