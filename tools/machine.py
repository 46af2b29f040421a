# ruff: noqa: S603 - a CLI report that starts its own echo process
"""This machine, as the benchmarks see it: what it is (``hardware``), what its
processes have spent (``proc_stat``), and how fast it is right now.

The VM this project is measured on changes speed from second to second, by up to
twice, so a benchmark figure means little without the machine's speed beside it.
``make bench`` runs these probes before and after its scenarios, samples the
interpreter's speed once a second throughout (``SpeedSampler``), and keeps both in
its JSON: two runs are comparable when their probes agree.

- ``python``: CPU for a fixed pure-Python loop (the interpreter's speed).
- ``process round trip``: a 100-byte message over TCP to another process and
  back, CPU on both sides (what every hop between our processes pays).
- ``SELECT 1``: a psycopg round trip to PostgreSQL, CPU on the client and on its
  server backend (what every statement pays before any work).

    python -m tools.machine
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

import psycopg

CLK_TCK = os.sysconf("SC_CLK_TCK")
LOOP_STEPS = 100_000
# Echoes until the other side closes; Nagle off, as every client of ours has it.
_ECHO = (
    "import socket, sys\n"
    "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
    "s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)\n"
    "while data := s.recv(4096):\n"
    "    s.sendall(data)\n"
)


@dataclass(frozen=True, slots=True)
class MachineSpeed:
    """CPU microseconds per operation, as measured now."""

    python_loop_us: float  # one pass of LOOP_STEPS steps, median
    python_loop_fastest_us: float
    python_loop_slowest_us: float
    process_round_trip_us: float  # both sides
    process_round_trip_sender_us: float
    select_1_us: float | None  # client + server backend; None if the server is remote
    select_1_client_us: float
    select_1_server_us: float | None

    def rows(self) -> list[tuple[str, float | None, str]]:
        return [
            (
                f"python: a {LOOP_STEPS:,}-step loop (median)",
                self.python_loop_us,
                (
                    f"fastest {self.python_loop_fastest_us:.0f},"
                    f" slowest {self.python_loop_slowest_us:.0f}"
                ),
            ),
            (
                "TCP round trip to another process",
                self.process_round_trip_us,
                f"sender {self.process_round_trip_sender_us:.1f}",
            ),
            (
                "SELECT 1 through psycopg",
                self.select_1_us,
                f"client {self.select_1_client_us:.1f}, server "
                + (
                    "not on this machine"
                    if self.select_1_server_us is None
                    else f"{self.select_1_server_us:.1f}"
                ),
            ),
        ]

    def report(self, heading: str = "This machine now") -> str:
        note = "CPU µs per op; on a shared VM it moves from second to second"
        lines = [f"== {heading} ({note})"]
        width = max(len(name) for name, _, _ in self.rows())
        lines += [
            f"{name:<{width}}  {'-' if value is None else f'{value:.1f}':>9}"
            f"  {detail}".rstrip()
            for name, value, detail in self.rows()
        ]
        return "\n".join(lines)


def proc_stat(pid: int) -> tuple[str, int, float, float] | None:
    """(comm, ppid, utime+stime, cutime+cstime) in seconds, or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): ppid is field 4, utime..cstime fields 14-17
    ppid = int(fields[1])
    own = (int(fields[11]) + int(fields[12])) / CLK_TCK
    children = (int(fields[13]) + int(fields[14])) / CLK_TCK
    return comm, ppid, own, children


def _cpu_s(pid: int) -> float:
    """utime + stime of a live process, in seconds."""
    stat = proc_stat(pid)
    if stat is None:
        raise ProcessLookupError(pid)
    return stat[2]


def hardware() -> dict[str, Any]:
    """What this machine is: cores, CPU model, memory, Python."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 2**20, 1),
        "python": sys.version.split()[0],
    }


def _loop_cpu_s(steps: int) -> float:
    """This thread's CPU seconds for a pure-Python loop of ``steps`` steps."""
    started = time.thread_time()
    total = 0
    for i in range(steps):
        total += i & 7
    return time.thread_time() - started


def python_loop_us(passes: int = 20) -> tuple[float, float, float]:
    """(median, fastest, slowest) CPU µs of ``passes`` runs of a pure-Python loop.

    The spread is the point as much as the median: on a shared VM the same loop
    takes up to twice as long from one second to the next.
    """
    times = [_loop_cpu_s(LOOP_STEPS) * 1e6 for _ in range(passes)]
    return statistics.median(times), min(times), max(times)


def process_round_trip_us(count: int = 5000) -> tuple[float, float]:
    """(both sides, sender only): CPU µs per TCP round trip to an echo process."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        echo = subprocess.Popen([sys.executable, "-c", _ECHO, str(port)])
        try:
            server.settimeout(10)
            conn, _ = server.accept()
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                message = b"x" * 100
                for _ in range(200):  # the echo process imports and settles first
                    conn.sendall(message)
                    conn.recv(4096)
                echo_before = _cpu_s(echo.pid)
                started = time.thread_time()
                for _ in range(count):
                    conn.sendall(message)
                    conn.recv(4096)
                sender = time.thread_time() - started
                echoed = _cpu_s(echo.pid) - echo_before
        finally:
            if echo.poll() is None:  # it ends when the connection closes, if it had one
                try:
                    echo.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    echo.kill()
                    echo.wait()
    return (sender + echoed) / count * 1e6, sender / count * 1e6


def select_1_us(database_url: str, count: int = 3000) -> tuple[float, float | None]:
    """(client, server backend): CPU µs per ``SELECT 1`` round trip.

    The server's side is None when its backend is not a process of this machine
    (PostgreSQL in a container or elsewhere): its CPU cannot be read from here.
    """
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None  # noqa: S101 - the function always answers
        backend = int(row[0]) if _is_postgres(int(row[0])) else None
        for _ in range(200):  # the statement is prepared after a few runs
            conn.execute("SELECT 1").fetchone()
        server_before = 0.0 if backend is None else _cpu_s(backend)
        started = time.thread_time()
        for _ in range(count):
            conn.execute("SELECT 1").fetchone()
        client = time.thread_time() - started
        server = None if backend is None else _cpu_s(backend) - server_before
    return client / count * 1e6, None if server is None else server / count * 1e6


def _is_postgres(pid: int) -> bool:
    stat = proc_stat(pid)
    return stat is not None and stat[0] == "postgres"


def measure(database_url: str, *, scale: float = 1.0) -> MachineSpeed:
    """All three probes; ``scale`` < 1 runs fewer operations (tests)."""
    trip, sender = process_round_trip_us(max(100, int(5000 * scale)))
    client, server = select_1_us(database_url, max(100, int(3000 * scale)))
    median, fastest, slowest = python_loop_us(max(3, int(20 * scale)))
    return MachineSpeed(
        python_loop_us=median,
        python_loop_fastest_us=fastest,
        python_loop_slowest_us=slowest,
        process_round_trip_us=trip,
        process_round_trip_sender_us=sender,
        select_1_us=None if server is None else client + server,
        select_1_client_us=client,
        select_1_server_us=server,
    )


def as_json(speed: MachineSpeed) -> dict[str, float | None]:
    return {
        key: None if value is None else round(value, 2)
        for key, value in asdict(speed).items()
    }


class SpeedSampler:
    """Times a short pure-Python loop once a second, in a thread, while it runs.

    The VM's speed moves within seconds, so one probe before a run says little
    about the run itself; the samples taken during it do. A sample costs about a
    millisecond of CPU a second, charged to whichever process runs the sampler.
    """

    def __init__(self, *, interval_s: float = 1.0, steps: int = 20_000) -> None:
        self._interval_s = interval_s
        self._steps = steps
        self._samples: list[tuple[float, float]] = []  # (monotonic, µs per loop)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="machine-speed", daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        scale = LOOP_STEPS / self._steps
        while not self._stop.wait(self._interval_s):
            elapsed = _loop_cpu_s(self._steps)
            self._samples.append((time.monotonic(), elapsed * scale * 1e6))

    def between(self, start: float, end: float) -> dict[str, float] | None:
        """The loop's CPU µs (per LOOP_STEPS steps) sampled between two instants."""
        values = sorted(v for at, v in list(self._samples) if start <= at <= end)
        if not values:
            return None

        def at(q: float) -> float:
            return round(values[min(len(values) - 1, int(q * len(values)))], 1)

        return {
            "samples": len(values),
            "python_loop_us_p10": at(0.1),
            "python_loop_us_p50": at(0.5),
            "python_loop_us_p90": at(0.9),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    speed = measure(args.database_url)
    print(json.dumps(as_json(speed)) if args.json else speed.report())


if __name__ == "__main__":
    main()
