"""The machine-speed probes that `make bench` prints beside its figures."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools.machine import LOOP_STEPS, SpeedSampler, measure

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m tools.machine`` as a user runs it."""
    return subprocess.run(  # noqa: S603 - our own module
        [sys.executable, "-m", "tools.machine", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_the_probe_prints_its_three_costs(database_url: str) -> None:
    run = probe("--database-url", database_url)

    assert run.returncode == 0, run.stderr
    rows = run.stdout.splitlines()
    assert rows[0].startswith("== This machine now (CPU µs per op")
    assert [row.split("  ")[0] for row in rows[1:]] == [
        f"python: a {LOOP_STEPS:,}-step loop (median)",
        "TCP round trip to another process",
        "SELECT 1 through psycopg",
    ]


def test_each_round_trip_counts_both_sides(database_url: str) -> None:
    # Full scale: the kernel counts a process's CPU in 10 ms ticks, and 900
    # SELECT 1s cost the server backend about that much on a fast spell.
    speed = measure(database_url, scale=1.0)

    # The echo process's CPU is read from /proc and added to the sender's.
    assert 0 < speed.process_round_trip_sender_us < speed.process_round_trip_us
    assert speed.select_1_client_us > 0
    if speed.select_1_server_us is None:  # PostgreSQL is not a process of this host
        assert speed.select_1_us is None
    else:
        assert speed.select_1_server_us > 0
        assert speed.select_1_us == pytest.approx(
            speed.select_1_client_us + speed.select_1_server_us
        )
    assert speed.python_loop_fastest_us > 0
    printed = probe("--json", "--database-url", database_url)
    assert printed.returncode == 0, printed.stderr
    saved = json.loads(printed.stdout)
    assert set(saved) == {
        "python_loop_us",
        "python_loop_fastest_us",
        "python_loop_slowest_us",
        "process_round_trip_us",
        "process_round_trip_sender_us",
        "select_1_us",
        "select_1_client_us",
        "select_1_server_us",
    }


def test_the_sampler_reports_only_its_window() -> None:
    with SpeedSampler(interval_s=0.05, steps=2000) as sampler:
        time.sleep(0.5)
        window = (time.monotonic() - 0.3, time.monotonic())
        time.sleep(0.3)

    during = sampler.between(*window)
    assert during is not None
    assert 1 <= during["samples"] <= 7  # one per 50 ms in a 300 ms window
    assert (
        0
        < during["python_loop_us_p10"]
        <= during["python_loop_us_p50"]
        <= during["python_loop_us_p90"]
    )
    later = time.monotonic()
    assert sampler.between(later, later + 1) is None  # stopped: nothing after
