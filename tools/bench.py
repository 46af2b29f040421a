# ruff: noqa: PLR2004, RUF002, C901, ANN401, PLR0917, B007, PLW2901, PLC0206, PERF401, PTH208, S110, ISC004 - a CLI report
"""Benchmarks: the whole system as processes on this machine, under load, measured.

Each scenario gets its own fresh database and broker namespace, starts every
service (``tools.system.running_system``), drives orders the way clients do
(``tools.load``) and prints a table: orders/s to a terminal status seen on the
WebSocket, POST → each status p50/p95/p99, missed / duplicate / out-of-order
events, and CPU seconds per order of every service (summed over replicas), of
RabbitMQ (beam.smp), of PostgreSQL and of the harness itself. A summary compares
each scenario with its target; everything is also written as JSON to
``test-output/bench/<timestamp>.json``.

    python -m tools.bench                          # every scenario (make bench)
    python -m tools.bench --scenario S2 --orders 200
    python -m tools.bench --scenario S1 --scenario S3 --set EXECUTOR_CONCURRENCY=256

Scenarios:
  S1     zero-latency venues and chain, closed loop, high concurrency: max throughput
  S1-r2  the same with ROUTERS=2 EXECUTORS=2
  S2     zero latency, one order at a time: the engine's own latency
  S3     seed-like latencies and ~10 % transient faults, open loop: throughput and
         engine overhead = e2e − simulated time (quote windows, landing, back-offs),
         e2e from the POST that was accepted (503s at capacity are counted apart)
  S4     thousands of firehose WebSocket subscribers: push latency
  S4-r2  the same with NOTIFIERS=2 sharing the WebSocket port
  S5     S2 again with >= 1,000,000 events already in the store

CPU method: utime+stime from /proc/<pid>/stat before and after the measured window
(warm-up excluded). PostgreSQL: the postmaster's own time, plus every live child's
time, plus the postmaster's cutime+cstime (children already reaped), so backends
that come and go are all counted; this covers the whole server (other databases
too), so the bench database's own live backends (matched by their process title)
are also reported. RabbitMQ: the beam.smp process (the whole broker). Harness:
this process's CPU time plus its subscriber worker processes.
"""

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import resource
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from shared.chain.simulated import LANDER_LOCK
from shared.eventstore.checkpoints import Checkpoints
from shared.eventstore.pool import open_pool
from shared.messaging.relay import relay_subscriber
from tools.databases import fresh_database
from tools.leaders import lock_holder
from tools.load import STATUSES, Load, LoadPlan, OrderRun, percentile, server_time
from tools.machine import (
    LOOP_STEPS,
    MachineSpeed,
    SpeedSampler,
    as_json as speed_json,
    hardware,
    measure as measure_machine,
    proc_stat,
)
from tools.system import SERVICES, System, running_system

OUTPUT = Path(__file__).resolve().parents[1] / "test-output" / "bench"

# Venues and chain answer at once and never fail: what is left is the engine.
ZERO_LATENCY = {
    "QUOTE_DELAY_MS": "0",
    "QUOTE_FAILURE_RATE": "0",
    "CONFIRM_MIN_MS": "0",
    "CONFIRM_MAX_MS": "0",
    "SLOT_MS": "10",  # the executor polls signatures every min(200, SLOT_MS/2) ms
    "BLOCKHASH_VALID_SLOTS": "6000",  # 60 s at 10 ms slots, as 150 x 400 ms
    "FAULT_NETWORK_RATE": "0",
    "FAULT_SLIPPAGE_RATE": "0",
    "FAULT_DROP_RATE": "0",
}
# The seed's latencies (settings defaults) with ~10 % transient faults per call.
SEED_LIKE = {
    "QUOTE_DELAY_MS": "200",
    "CONFIRM_MIN_MS": "2000",
    "CONFIRM_MAX_MS": "3000",
    "SLOT_MS": "400",
    "FAULT_NETWORK_RATE": "0.04",
    "FAULT_SLIPPAGE_RATE": "0.03",
    "QUOTE_FAILURE_RATE": "0.03",
    "FAULT_DROP_RATE": "0",
    # Default 32 orders in flight per executor caps throughput at ~32 / 2.5 s
    # ≈ 13 orders/s with 2-3 s confirmations; the open loop needs ~300 in flight.
    "EXECUTOR_CONCURRENCY": "512",
}
TERMINAL_TYPES = ("SwapConfirmed", "OrderFailed")
# The read models' followers: each one's checkpoint and leader lock share this
# name (the gateway's order list, the executor's orders in flight).
PROJECTIONS = ("projection:gateway.orders_view", "projection:executor.in_flight")


# --- CPU accounting ----------------------------------------------------------


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@dataclass
class CpuSample:
    seconds: dict[str, float]
    wall: float


class CpuMeter:
    """CPU seconds of the system's processes, RabbitMQ, PostgreSQL and the harness."""

    def __init__(self, system: System, dbname: str) -> None:
        self._system = system
        self._dbname = dbname
        self.extra_harness = 0.0  # CPU of harness worker processes, added by callers

    def sample(self) -> CpuSample:
        out: dict[str, float] = defaultdict(float)
        for instance, process in self._system.processes.items():
            stat = proc_stat(process.pid)
            if stat is not None:
                out[instance.split("-", 1)[0]] += stat[2]
        for server, seconds in server_cpu(self._dbname).items():
            out[server] += seconds
        out["harness"] = time.process_time() + self.extra_harness
        return CpuSample(dict(out), time.monotonic())


def server_cpu(dbname: str) -> dict[str, float]:
    """CPU seconds so far of RabbitMQ and PostgreSQL (and ``dbname``'s backends)."""
    out: dict[str, float] = defaultdict(float)
    stats = {pid: s for pid in _all_pids() if (s := proc_stat(pid)) is not None}
    for pid, (comm, ppid, own, _) in stats.items():
        if comm == "beam.smp":
            out["rabbitmq"] += own
    for pid, (comm, ppid, own, reaped) in stats.items():
        parent = stats.get(ppid)
        if comm != "postgres" or (parent is not None and parent[0] == "postgres"):
            continue
        # the postmaster: itself, its reaped children, its live children
        out["postgres"] += own + reaped
        for child_pid, (child_comm, child_ppid, child_own, _) in stats.items():
            if child_ppid == pid:
                out["postgres"] += child_own
                if f" {dbname} " in _cmdline(child_pid):
                    out["postgres (bench db backends)"] += child_own
    return dict(out)


def cpu_delta(before: CpuSample, after: CpuSample) -> dict[str, float]:
    keys = list(dict.fromkeys([*before.seconds, *after.seconds]))
    return {k: after.seconds.get(k, 0.0) - before.seconds.get(k, 0.0) for k in keys}


# --- results -----------------------------------------------------------------


@dataclass
class Result:
    name: str
    description: str
    settings: dict[str, str]
    replicas: dict[str, int]
    load: dict[str, Any]
    orders: int = 0
    accepted: int = 0
    terminal: int = 0
    confirmed: int = 0
    failed: int = 0
    incomplete: int = 0
    refused: int = 0
    span_s: float = 0.0
    throughput: float = 0.0
    latency_ms: dict[str, dict[str, float | int | None]] = field(default_factory=dict)
    anomalies: dict[str, int] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)
    cpu_ms_per_order: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    # the Python loop's speed sampled during the scenario (tools.machine)
    machine_speed: dict[str, float] | None = None

    @property
    def missed(self) -> int:
        return sum(self.anomalies.values())


def stats_ms(values: Sequence[float]) -> dict[str, float | int | None]:
    ms = [v * 1000 for v in values]

    def r(q: float) -> float | None:
        v = percentile(ms, q)
        return None if v is None else round(v, 1)

    return {
        "n": len(ms),
        "p50": r(50),
        "p95": r(95),
        "p99": r(99),
        "max": round(max(ms), 1) if ms else None,
    }


def summarize_runs(result: Result, runs: Sequence[OrderRun]) -> None:
    result.orders = len(runs)
    accepted = [r for r in runs if r.order_id]
    result.accepted = len(accepted)
    result.refused = sum(1 for r in runs if r.refused)
    done = [r for r in accepted if r.terminal is not None]
    result.terminal = len(done)
    result.confirmed = sum(1 for r in done if r.terminal == "confirmed")
    result.failed = sum(1 for r in done if r.terminal == "failed")
    result.incomplete = result.accepted - result.terminal
    if done:
        first = min(r.submitted_at for r in runs if r.submitted_at)
        last = max(
            f.at for r in done for f in r.frames if f.status in ("confirmed", "failed")
        )
        result.span_s = round(last - first, 3)
        result.throughput = round(len(done) / max(last - first, 1e-9), 1)
    lat: dict[str, list[float]] = {"POST answered": []}
    for r in accepted:
        if r.accepted_at is not None:
            lat["POST answered"].append(r.accepted_at - r.submitted_at)
        for status in STATUSES:
            seen = r.first_seen(status)
            if seen is not None:
                lat.setdefault(status, []).append(seen - r.submitted_at)
    result.latency_ms = {k: stats_ms(v) for k, v in lat.items()}
    waited = [r for r in accepted if r.unavailable]
    if waited:
        result.extra["admission"] = {
            "503 answers before acceptance": sum(r.unavailable for r in runs),
            "orders that waited for room": len(waited),
        }
    anomalies: Counter[str] = Counter()
    for r in accepted:
        anomalies.update(r.anomalies())
        if r.terminal == "confirmed":
            # a confirmed order must have shown every status of the happy path
            shown = {f.status for f in r.frames}
            anomalies["missing_status"] += sum(
                s not in shown for s in ("pending", "routing", "building", "submitted")
            )
    anomalies["no_terminal_on_ws"] = result.incomplete
    result.anomalies = dict(anomalies)


def leaders(system: System) -> dict[str, str]:
    """Which instance holds each leader lock now.

    The relay, the read models and the chain's lander each run in one process
    chosen by whoever takes the lock first, so their CPU lands in a different
    service from one run to the next; this says where it landed.
    """
    locks = {
        "relay": relay_subscriber(system.env["BROKER_NAMESPACE"]),
        LANDER_LOCK: LANDER_LOCK,
        **{projection: projection for projection in PROJECTIONS},
    }
    held = {label: lock_holder(system, lock) for label, lock in locks.items()}
    return {label: instance for label, instance in held.items() if instance}


def attach_cpu(result: Result, delta: Mapping[str, float], orders: int) -> None:
    result.cpu_s = {k: round(v, 2) for k, v in delta.items()}
    n = max(orders, 1)
    result.cpu_ms_per_order = {k: round(1000 * v / n, 2) for k, v in delta.items()}


# --- printing ----------------------------------------------------------------


def _fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
    return str(v)


def _numeric(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return cell == "-"
    return True


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [
        max(len(h), *(len(row[i]) for row in cells)) if cells else len(h)
        for i, h in enumerate(header)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    out = [line, "-" * len(line)]
    for row in cells:
        out.append(
            "  ".join(
                (c.rjust(w) if _numeric(c) and i else c.ljust(w))
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(out)


def scenario_report(r: Result) -> str:
    lines = [
        f"== {r.name}: {r.description}",
        f"   load {json.dumps(r.load)}  replicas {json.dumps(r.replicas)}",
        f"   orders {r.orders}: accepted {r.accepted}, terminal {r.terminal}"
        f" (confirmed {r.confirmed}, failed {r.failed}), no terminal {r.incomplete},"
        f" refused {r.refused}",
        f"   throughput {r.throughput} orders/s to a terminal status seen on WS"
        f" (first POST -> last terminal frame {r.span_s} s)",
        "   events: "
        + ", ".join(f"{k} {v}" for k, v in sorted(r.anomalies.items()))
        + f"  => missed/duplicate/out-of-order total {r.missed}",
        "",
    ]
    rows = [
        (name, s["n"], s["p50"], s["p95"], s["p99"], s["max"])
        for name, s in r.latency_ms.items()
        if s["n"]
    ]
    lines.append(table(rows, ("POST -> (ms)", "n", "p50", "p95", "p99", "max")))
    lines.append("")
    order = [
        *SERVICES,
        "rabbitmq",
        "postgres",
        "postgres (bench db backends)",
        "harness",
    ]
    cpu_rows = [
        (k, r.cpu_s.get(k), r.cpu_ms_per_order.get(k)) for k in order if k in r.cpu_s
    ]
    engine = sum(r.cpu_s.get(k, 0.0) for k in (*SERVICES, "rabbitmq", "postgres"))
    cpu_rows.append(
        (
            "engine total (services+broker+db)",
            engine,
            1000 * engine / max(r.terminal, 1),
        )
    )
    lines.append(
        table(cpu_rows, ("CPU over the measured window", "CPU s", "CPU ms/order"))
    )
    lines.append(f"   wall {r.wall_s:.1f} s, {2 * r.wall_s:.1f} core-seconds available")
    for key, value in r.extra.items():
        if (
            isinstance(value, dict)
            and value
            and all(isinstance(v, dict) for v in value.values())
        ):
            lines.append("")
            rows = [
                (k, v.get("n"), v.get("p50"), v.get("p95"), v.get("p99"), v.get("max"))
                for k, v in value.items()
            ]
            lines.append(table(rows, (f"{key} (ms)", "n", "p50", "p95", "p99", "max")))
        else:
            lines.append(f"   {key}: {json.dumps(value, default=str)}")
    return "\n".join(lines)


# --- running a scenario ------------------------------------------------------


@dataclass
class Env:
    server_url: str
    amqp_url: str
    run_id: str
    logs: Path
    overrides: dict[str, str]
    keep: bool = False


@contextlib.contextmanager
def scenario_system(
    env: Env,
    tag: str,
    settings: Mapping[str, str],
    replicas: Mapping[str, int] | None = None,
    *,
    database_url: str | None = None,
) -> Iterator[tuple[System, str, str]]:
    """A fresh database (unless given) and namespace, and the system on them."""
    namespace = f"oe-bench-{env.run_id}-{tag.lower()}"
    dbname = f"oe_bench_{env.run_id}_{tag.lower().replace('-', '_')}"
    with contextlib.ExitStack() as stack:
        if database_url is None:
            database_url = stack.enter_context(
                fresh_database(env.server_url, dbname, keep=env.keep)
            )
        system = stack.enter_context(
            _started(env, tag, database_url, namespace, settings, replicas)
        )
        yield system, dbname, namespace


@contextlib.contextmanager
def _started(
    env: Env,
    tag: str,
    database_url: str,
    namespace: str,
    settings: Mapping[str, str],
    replicas: Mapping[str, int] | None,
) -> Iterator[System]:
    last: Exception | None = None
    for attempt in range(3):
        try:
            with running_system(
                database_url=database_url,
                amqp_url=env.amqp_url,
                namespace=namespace,
                logs=env.logs / tag,
                settings={**settings, **env.overrides},
                replicas=replicas,
            ) as system:
                yield system
                return
        except (RuntimeError, TimeoutError) as error:
            # colleagues may be mid-edit: wait and retry a start, never a run
            last = error
            print(
                f"   {tag}: system did not start ({error!s:.300}); retrying", flush=True
            )
            time.sleep(30 * (attempt + 1))
    raise RuntimeError(f"{tag}: the system would not start") from last


async def drive(
    system: System,
    plan: LoadPlan,
    *,
    warmup: int,
    meter: CpuMeter,
) -> tuple[list[OrderRun], dict[str, float], float]:
    if warmup:
        await Load(
            api_urls=system.api_urls(),
            ws_urls=system.ws_urls(),
            plan=LoadPlan(
                orders=warmup,
                concurrency=min(plan.concurrency, warmup),
                body=plan.body,
                run_id=f"{plan.run_id}-warmup",
                timeout_s=60,
            ),
        ).run()
    before = meter.sample()
    runs = await Load(
        api_urls=system.api_urls(), ws_urls=system.ws_urls(), plan=plan
    ).run()
    after = meter.sample()
    return runs, cpu_delta(before, after), after.wall - before.wall


def new_result(
    name: str,
    description: str,
    settings: Mapping[str, str],
    replicas: Mapping[str, int],
    plan: LoadPlan,
    env: Env,
) -> Result:
    load: dict[str, float] = {"orders": plan.orders}
    if plan.rate is None:
        load["concurrency"] = plan.concurrency
    else:
        load["rate"] = plan.rate
    return Result(
        name=name,
        description=description,
        settings={**settings, **env.overrides},
        replicas=dict(replicas),
        load=load,
    )


async def closed_loop(
    env: Env,
    name: str,
    description: str,
    *,
    settings: Mapping[str, str],
    replicas: Mapping[str, int],
    orders: int,
    concurrency: int,
    warmup: int,
    database_url: str | None = None,
) -> Result:
    plan = LoadPlan(
        orders=orders,
        concurrency=concurrency,
        run_id=f"bench-{env.run_id}-{name}",
        timeout_s=120,
    )
    result = new_result(name, description, settings, replicas, plan, env)
    with scenario_system(env, name, settings, replicas, database_url=database_url) as (
        system,
        dbname,
        _,
    ):
        if database_url is not None:
            dbname = str(psycopg.conninfo.conninfo_to_dict(database_url)["dbname"])
        meter = CpuMeter(system, dbname)
        runs, delta, wall = await drive(system, plan, warmup=warmup, meter=meter)
        result.extra["leaders"] = leaders(system)
    summarize_runs(result, runs)
    attach_cpu(result, delta, result.terminal)
    result.wall_s = wall
    return result


# --- S1, S2 ------------------------------------------------------------------


async def s1(env: Env, args: argparse.Namespace, replicas: int) -> Result:
    name = "S1" if replicas == 1 else f"S1-r{replicas}"
    reps = {"router": replicas, "executor": replicas}
    return await closed_loop(
        env,
        name,
        f"zero latency, closed loop c={args.concurrency}, router/executor x{replicas}",
        settings=ZERO_LATENCY,
        replicas=reps,
        orders=args.orders or 2000,
        concurrency=args.concurrency,
        warmup=100,
    )


async def s2(env: Env, args: argparse.Namespace, name: str = "S2") -> Result:
    return await closed_loop(
        env,
        name,
        "zero latency, one order at a time (c=1)",
        settings=ZERO_LATENCY,
        replicas={},
        orders=args.orders or 300,
        concurrency=1,
        warmup=30,
    )


# --- S3 ----------------------------------------------------------------------


def _simulated(
    database_url: str, order_ids: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Per order: simulated seconds (quote windows, back-offs, landing delays).

    - quote window: RoutingStarted → the attempt's next event (RouteSelected, or the
      RetryScheduled/OrderFailed of a quote failure); for a retry, from the end of
      its back-off (RetryScheduled.at + delayMs) to the next event. It holds the
      venues' simulated delay plus the router's own quoting and planning (~1-2 ms,
      see S2's routing→building), so overhead is slightly under-counted.
    - back-off: RetryScheduled.delayMs.
    - landing: lands_at − received_at of every transaction the chain received.
    """
    with psycopg.connect(database_url) as conn:
        events = conn.execute(
            "SELECT stream_id::text, event_type, data, extract(epoch FROM recorded_at)"
            " FROM es.events WHERE stream_id = ANY(%s::uuid[])"
            " ORDER BY stream_id, stream_version",
            (list(order_ids),),
        ).fetchall()
        chain = conn.execute(
            "SELECT order_id::text, extract(epoch FROM lands_at - received_at)"
            " FROM chain.transactions WHERE order_id = ANY(%s::uuid[])"
            " AND status = 'landed'",
            (list(order_ids),),
        ).fetchall()
    out: dict[str, dict[str, float]] = {}
    window_start: float | None = None
    current: str | None = None
    for stream, event_type, data, at in events:
        at = float(at)
        if stream != current:
            current, window_start = stream, None
            out[stream] = {
                "quote": 0.0,
                "backoff": 0.0,
                "landing": 0.0,
                "attempts": 0.0,
            }
        entry = out[stream]
        if window_start is not None:
            entry["quote"] += max(0.0, at - window_start)
            window_start = None
        if event_type == "RoutingStarted":
            window_start = at
            entry["attempts"] += 1
        elif event_type == "RetryScheduled":
            delay = float(data.get("delayMs", data.get("delay_ms", 0))) / 1000
            entry["backoff"] += delay
            entry["attempts"] += 1
            window_start = at + delay
    for order_id, landing in chain:
        if order_id in out:
            out[order_id]["landing"] += float(landing)
    return out


async def s3(env: Env, args: argparse.Namespace) -> Result:
    rate = args.rate or 100.0
    orders = args.orders or int(rate * 25)
    plan = LoadPlan(
        orders=orders,
        rate=rate,
        # Two-sided flow: one-sided orders at this rate would move the pool past
        # their own slippage bound while they wait 2-3 s to land, and measure the
        # market's impact instead of the engine.
        sides=("sell", "buy"),
        run_id=f"bench-{env.run_id}-S3",
        # Per order, waits for room included: 25 s of orders at 100/s take an
        # engine that carries 20-40/s one to two minutes to drain, and the last
        # order offered is admitted near the end of that.
        timeout_s=180,
    )
    replicas = {"router": args.s3_replicas, "executor": args.s3_replicas}
    result = new_result(
        "S3",
        f"seed-like latencies, ~10 % faults, open loop {rate:g} orders/s",
        SEED_LIKE,
        replicas,
        plan,
        env,
    )
    with scenario_system(env, "S3", SEED_LIKE, replicas) as (system, dbname, _):
        meter = CpuMeter(system, dbname)
        runs, delta, wall = await drive(system, plan, warmup=20, meter=meter)
        result.extra["leaders"] = leaders(system)
        done = [r for r in runs if r.order_id and r.terminal]
        sim = await asyncio.to_thread(
            _simulated, system.env["DATABASE_URL"], [str(r.order_id) for r in done]
        )
    summarize_runs(result, runs)
    attach_cpu(result, delta, result.terminal)
    result.wall_s = wall
    overhead: list[float] = []
    clean: list[float] = []
    parts: dict[str, list[float]] = {"quote": [], "landing": [], "backoff": []}
    e2e: list[float] = []
    for r in done:
        s = sim.get(str(r.order_id))
        end = next(f.at for f in r.frames if f.status in ("confirmed", "failed"))
        if s is None:
            continue
        total = s["quote"] + s["backoff"] + s["landing"]
        e2e.append(end - r.submitted_at)
        # From acceptance: a POST refused at capacity (503) and retried by the
        # client is the admission's wait, not the engine's, and is shown apart.
        admitted = r.admitted_post_at or r.submitted_at
        overhead.append(end - admitted - total)
        if s["attempts"] == 1 and r.terminal == "confirmed":
            clean.append(end - admitted - total)
        for k in parts:
            parts[k].append(s[k])
    result.extra["engine overhead"] = {
        "e2e (first POST -> terminal)": stats_ms(e2e),
        "simulated: quote windows": stats_ms(parts["quote"]),
        "simulated: landing": stats_ms(parts["landing"]),
        "simulated: back-offs": stats_ms(parts["backoff"]),
        "overhead, all orders": stats_ms(overhead),
        "overhead, 1 attempt confirmed": stats_ms(clean),
    }
    result.extra["attempts"] = dict(Counter(int(s["attempts"]) for s in sim.values()))
    return result


# --- S4: many WebSocket subscribers ------------------------------------------


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _subscriber_worker(
    url: str, count: int, ready: Any, stop: Any, results: Any
) -> None:
    """A process holding ``count`` firehose connections; reports receive − at."""
    raise_fd_limit()
    cpu0 = time.process_time()
    asyncio.run(_subscribers(url, count, ready, stop, results, cpu0))


async def _subscribers(
    url: str, count: int, ready: Any, stop: Any, results: Any, cpu0: float
) -> None:
    import orjson  # noqa: PLC0415 - only in the worker
    from websockets.asyncio.client import connect  # noqa: PLC0415

    latencies: list[float] = []
    anomalies: Counter[str] = Counter()
    connected = 0
    gate = asyncio.Semaphore(50)
    opened = asyncio.Event()

    async def one() -> None:
        nonlocal connected
        try:
            async with gate:
                ws = await connect(f"{url}/ws/orders", open_timeout=60, max_size=None)
        except Exception:
            anomalies["connect_failed"] += 1
            return
        connected += 1
        if connected + anomalies["connect_failed"] >= count:
            opened.set()
        last: int | None = None
        try:
            async for message in ws:
                received = time.time()
                frame = orjson.loads(message)
                at = server_time(frame.get("at"))
                if at is not None:
                    latencies.append(received - at)
                position = frame.get("position")
                if isinstance(position, int):
                    if last is not None:
                        if position == last:
                            anomalies["duplicate"] += 1
                        elif position < last:
                            anomalies["out_of_order"] += 1
                        elif position > last + 1:
                            anomalies["gap"] += position - last - 1
                    last = position if last is None else max(last, position)
        except Exception:
            pass
        code = ws.close_code
        if code is not None and code != 1000:
            anomalies[f"closed_{code}"] += 1

    tasks = [asyncio.create_task(one()) for _ in range(count)]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(opened.wait(), 180)
    ready.put(connected)
    while not stop.is_set():  # noqa: ASYNC110 - a multiprocessing Event
        await asyncio.sleep(0.2)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    results.put(
        {
            "connected": connected,
            "latencies": latencies,
            "anomalies": dict(anomalies),
            "cpu_s": time.process_time() - cpu0,
        }
    )


def _workers_cpu(procs: Sequence[Any]) -> float:
    total = 0.0
    for p in procs:
        stat = proc_stat(p.pid) if p.pid is not None else None
        total += stat[2] if stat is not None else 0.0
    return total


async def s4(env: Env, args: argparse.Namespace, notifiers: int = 1) -> Result:
    name = "S4" if notifiers == 1 else f"S4-r{notifiers}"
    subscribers = args.subscribers
    workers = max(1, math.ceil(subscribers / 1250))
    rate = args.rate or 1.0
    plan = LoadPlan(
        orders=args.orders or 20,
        rate=rate,
        run_id=f"bench-{env.run_id}-{name}",
        timeout_s=120,
    )
    replicas = {"notifier": notifiers} if notifiers > 1 else {}
    # Replicas share the WebSocket port, as with make run NOTIFIERS=n: the kernel
    # spreads the subscribers' connections over them.
    settings = {**ZERO_LATENCY, "HTTP_REUSE_PORT": "true"} if replicas else ZERO_LATENCY
    result = new_result(
        name,
        f"{subscribers} firehose subscribers over {workers} processes,"
        f" orders at {rate:g}/s, zero latency, notifier x{notifiers}",
        settings,
        replicas,
        plan,
        env,
    )
    ctx = multiprocessing.get_context("spawn")
    with scenario_system(env, name, settings, replicas) as (system, dbname, _):
        meter = CpuMeter(system, dbname)
        ready, results, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
        share = [
            subscribers // workers + (i < subscribers % workers) for i in range(workers)
        ]
        procs = [
            ctx.Process(
                target=_subscriber_worker,
                args=(system.ws_url, n, ready, stop, results),
                daemon=True,
            )
            for n in share
        ]
        t0 = time.monotonic()
        for p in procs:
            p.start()
        connected = 0
        for _ in procs:
            connected += await asyncio.to_thread(ready.get, True, 240)
        connect_s = time.monotonic() - t0
        print(
            f"   S4: {connected} subscribers connected in {connect_s:.1f} s", flush=True
        )
        worker_cpu_before = _workers_cpu(procs)
        meter.extra_harness = 0.0
        before = meter.sample()
        runs = await Load(
            api_urls=system.api_urls(), ws_urls=system.ws_urls(), plan=plan
        ).run()
        await asyncio.sleep(2.0)  # let the last frames reach every subscriber
        worker_cpu_after = _workers_cpu(procs)
        meter.extra_harness = worker_cpu_after - worker_cpu_before
        after = meter.sample()
        result.extra["leaders"] = leaders(system)
        stop.set()
        outs = [await asyncio.to_thread(results.get, True, 120) for _ in procs]
        for p in procs:
            p.join(30)
    summarize_runs(result, runs)
    attach_cpu(result, cpu_delta(before, after), result.terminal)
    result.wall_s = after.wall - before.wall
    latencies = [v for o in outs for v in o["latencies"]]
    ws_anomalies: Counter[str] = Counter()
    for o in outs:
        ws_anomalies.update(o["anomalies"])
    events = sum(len(r.frames) for r in runs)
    result.extra["subscribers"] = {
        "target": subscribers,
        "connected": connected,
        "connect_s": round(connect_s, 1),
        "frames_received": len(latencies),
        "frames_expected": events * connected,
        "firehose anomalies": dict(ws_anomalies),
    }
    result.extra["push latency"] = {
        "firehose: client receive - frame at": stats_ms(latencies),
        "per-order stream (load driver)": stats_ms(
            [
                f.received_wall - f.server_at
                for r in runs
                for f in r.frames
                if f.received_wall is not None and f.server_at is not None
            ]
        ),
    }
    return result


# --- S5: S2 on a big store ---------------------------------------------------

_PRELOAD = """
INSERT INTO es.events (global_position, stream_id, stream_version, event_id,
                       event_type, data, correlation_id, causation_id, recorded_at)
SELECT %(base)s::bigint + (g - %(first)s::int) * %(per)s::int + t.version,
       s.stream_id,
       t.version,
       md5('bench-event:' || g || ':' || t.version)::uuid,
       t.event_type,
       jsonb_set(t.data, '{orderId}', to_jsonb(s.stream_id::text), false),
       s.stream_id,
       NULL,
       now() - interval '1 day' + g * interval '50 milliseconds'
  FROM generate_series(%(first)s::int, %(last)s::int) AS g
 CROSS JOIN LATERAL (SELECT md5('bench-order:' || g)::uuid AS stream_id) AS s
 CROSS JOIN (SELECT stream_version AS version, event_type, data
               FROM es.events WHERE stream_id = %(template)s::uuid) AS t
"""


def preload(database_url: str, events: int) -> dict[str, Any]:
    """Append ``events`` history events (one SQL statement per ~100k rows) and move
    the counter to the new head (``catch_up`` brings the followers there)."""
    started = time.monotonic()
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT stream_id, max(stream_version) FROM es.events"
            " WHERE stream_id IN (SELECT stream_id FROM es.events"
            "   WHERE event_type = 'SwapConfirmed')"
            " GROUP BY stream_id ORDER BY 2, 1 LIMIT 1"
        ).fetchone()
        if row is None:
            raise RuntimeError("S5: no confirmed order to use as a template")
        template, per = row
        orders = math.ceil(events / per)
        chunk = max(1, 100_000 // per)
        for first in range(0, orders, chunk):
            last = min(orders, first + chunk) - 1
            with conn.transaction():
                (head,) = conn.execute(
                    "SELECT last_position FROM es.position_counter FOR UPDATE"
                ).fetchone()  # type: ignore[misc]
                conn.execute(
                    _PRELOAD,
                    {
                        "base": head,
                        "first": first,
                        "last": last,
                        "per": per,
                        "template": template,
                    },
                )
                conn.execute(
                    "UPDATE es.position_counter SET last_position = %s",
                    (head + (last - first + 1) * per,),
                )
        (head,) = conn.execute(
            "SELECT last_position FROM es.position_counter"
        ).fetchone()  # type: ignore[misc]
        (count, size) = conn.execute(
            "SELECT count(*), pg_size_pretty(pg_total_relation_size('es.events'))"
            " FROM es.events"
        ).fetchone()  # type: ignore[misc]
    return {
        "events_in_store": count,
        "head_position": head,
        "es.events size": size,
        "preload_s": round(time.monotonic() - started, 1),
    }


async def catch_up(
    env: Env, database_url: str, namespace: str, head: int, timeout_s: float = 900.0
) -> float:
    """Bring the followers of ``namespace`` to ``head``, where those of a store of
    that age are; the seconds the services took to build the read models, their
    start included.

    The history was published long ago, so the relay starts at the head.
    """
    pool = open_pool(database_url, min_size=1, max_size=1)
    await pool.open(wait=True)
    try:
        checkpoints = Checkpoints(pool)
        await checkpoints.advance(relay_subscriber(namespace), head)
        started = time.monotonic()
        with _started(env, "S5-catch-up", database_url, namespace, ZERO_LATENCY, {}):
            while True:
                positions = await checkpoints.positions(PROJECTIONS)
                if all(positions.get(name, 0) >= head for name in PROJECTIONS):
                    return round(time.monotonic() - started, 1)
                if time.monotonic() - started > timeout_s:
                    raise RuntimeError(f"S5: the read models did not reach {head}")
                await asyncio.sleep(0.5)
    finally:
        await pool.close()


def settle(database_url: str) -> dict[str, Any]:
    """Statistics and a write-back, as a store at rest has had."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        # A store that has held a million events for a while has had them written
        # back; without this the load's own checkpoint runs inside S5's window and
        # bills its CPU to the orders measured there.
        started = time.monotonic()
        conn.execute("CHECKPOINT")
        checkpoint_s = time.monotonic() - started
        (orders,) = conn.execute("SELECT count(*) FROM gateway.orders_view").fetchone()  # type: ignore[misc]
    return {"orders_view rows": orders, "checkpoint_s": round(checkpoint_s, 1)}


async def s5(env: Env, args: argparse.Namespace) -> Result:
    dbname = f"oe_bench_{env.run_id}_s5"
    namespace = f"oe-bench-{env.run_id}-s5"
    with fresh_database(env.server_url, dbname, keep=env.keep) as database_url:
        # a few real orders first: their events are the template of the history
        with scenario_system(
            env, "S5-seed", ZERO_LATENCY, {}, database_url=database_url
        ) as (system, _, _):
            await Load(
                api_urls=system.api_urls(),
                ws_urls=system.ws_urls(),
                plan=LoadPlan(
                    orders=10, concurrency=5, run_id=f"bench-{env.run_id}-S5-seed"
                ),
            ).run()
        info = await asyncio.to_thread(preload, database_url, args.preload_events)
        info["read_models_s"] = await catch_up(
            env, database_url, namespace, info["head_position"]
        )
        info |= await asyncio.to_thread(settle, database_url)
        print(f"   S5: preloaded {json.dumps(info)}", flush=True)
        result = await closed_loop(
            env,
            "S5",
            f"S2 with {info['events_in_store']:,} events already in the store",
            settings=ZERO_LATENCY,
            replicas={},
            orders=args.orders or 300,
            concurrency=1,
            warmup=30,
            database_url=database_url,
        )
        # the namespace must be the one whose relay checkpoint moved
        result.extra["preload"] = info
    return result


# --- summary -----------------------------------------------------------------


def _lat(r: Result | None, status: str, q: str) -> float | None:
    if r is None:
        return None
    v = r.latency_ms.get(status, {}).get(q)
    return None if v is None else float(v)


def summary(results: Mapping[str, Result]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(
        scenario: str, metric: str, target: str, measured: Any, met: bool | None
    ) -> None:
        verdict = "n/a" if met is None else ("met" if met else "MISSED")
        rows.append(
            {
                "scenario": scenario,
                "metric": metric,
                "target": target,
                "measured": measured,
                "verdict": verdict,
            }
        )

    s1s = [r for k, r in results.items() if k.startswith("S1")]
    for r in s1s:
        add(
            r.name,
            "orders/s, no missed events",
            ">= 300, 0 missed",
            f"{r.throughput} /s, {r.missed} missed",
            r.throughput >= 300 and r.missed == 0,
        )
    s2 = results.get("S2")
    if s2:
        p50, p99 = _lat(s2, "confirmed", "p50"), _lat(s2, "confirmed", "p99")
        add(
            "S2",
            "POST -> confirmed p50",
            "<= 10 ms",
            p50,
            p50 is not None and p50 <= 10,
        )
        add(
            "S2",
            "POST -> confirmed p99",
            "<= 40 ms",
            p99,
            p99 is not None and p99 <= 40,
        )
    s3r = results.get("S3")
    if s3r:
        add(
            "S3",
            "orders/s (open loop)",
            ">= 100",
            s3r.throughput,
            s3r.throughput >= 100 and s3r.incomplete == 0,
        )
        over = s3r.extra.get("engine overhead", {}).get("overhead, all orders", {})
        p99 = over.get("p99")
        add("S3", "engine overhead p99", "<= 50 ms", p99, p99 is not None and p99 <= 50)
    for name, s4r in results.items():
        if not name.startswith("S4"):
            continue
        subs = s4r.extra.get("subscribers", {})
        add(
            name,
            "WS subscribers connected",
            f">= {subs.get('target')}",
            subs.get("connected"),
            subs.get("connected", 0) >= 5000,
        )
        p99 = s4r.extra["push latency"]["firehose: client receive - frame at"]["p99"]
        add(name, "push latency p99", "<= 100 ms", p99, p99 is not None and p99 <= 100)
    s5r = results.get("S5")
    if s5r:
        for q in ("p50", "p99"):
            v5, v2 = _lat(s5r, "confirmed", q), _lat(s2, "confirmed", q)
            if v5 is None or v2 is None:
                add("S5", f"POST -> confirmed {q} vs S2", "<= S2 x 1.10", v5, None)
            else:
                add(
                    "S5",
                    f"POST -> confirmed {q} vs S2",
                    f"<= {1.1 * v2:.1f} ms (S2 {v2})",
                    f"{v5} ({100 * (v5 / v2 - 1):+.0f} %)",
                    v5 <= 1.1 * v2,
                )
    return rows


# --- main --------------------------------------------------------------------

SCENARIOS = ("S1", "S1-r2", "S2", "S3", "S4", "S4-r2", "S5")


async def run(args: argparse.Namespace) -> dict[str, Result]:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    env = Env(
        server_url=os.environ.get(
            "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        amqp_url=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
        run_id=uuid.uuid4().hex[:6],
        logs=OUTPUT / stamp,
        overrides=dict(kv.split("=", 1) for kv in args.set),
        keep=args.keep,
    )
    fd_limit = raise_fd_limit()  # inherited by the services and the workers
    chosen = args.scenario or list(SCENARIOS)
    print(
        f"bench {stamp}: scenarios {', '.join(chosen)}; fd limit {fd_limit};"
        f" logs in {env.logs}",
        flush=True,
    )
    results: dict[str, Result] = {}
    runners: dict[str, Callable[[], Any]] = {
        "S1": lambda: s1(env, args, 1),
        "S1-r2": lambda: s1(env, args, 2),
        "S2": lambda: s2(env, args),
        "S3": lambda: s3(env, args),
        "S4": lambda: s4(env, args),
        "S4-r2": lambda: s4(env, args, 2),
        "S5": lambda: s5(env, args),
    }
    speed_before = _machine_now(env.server_url, "before the scenarios")
    with SpeedSampler() as speed:
        for name in chosen:
            started = time.monotonic()
            print(f"\n-- {name} ...", flush=True)
            try:
                results[name] = await runners[name]()
            except Exception as error:
                print(f"   {name} FAILED: {error!r}", flush=True)
                continue
            during = speed.between(started, time.monotonic())
            results[name].machine_speed = during
            print(scenario_report(results[name]), flush=True)
            print(f"   ({name} took {time.monotonic() - started:.0f} s)", flush=True)
            if during is not None:
                print(
                    f"   (machine speed meanwhile: a {LOOP_STEPS:,}-step Python loop"
                    f" took {during['python_loop_us_p50']:.0f} µs of CPU, p10-p90"
                    f" {during['python_loop_us_p10']:.0f}-"
                    f"{during['python_loop_us_p90']:.0f}, {during['samples']} samples)",
                    flush=True,
                )
    print()
    speed_after = _machine_now(env.server_url, "after the scenarios")
    rows = summary(results)
    print("\n== Summary")
    print(
        table(
            [
                (r["scenario"], r["metric"], r["target"], r["measured"], r["verdict"])
                for r in rows
            ],
            ("scenario", "metric", "target", "measured", "verdict"),
        )
    )
    OUTPUT.mkdir(parents=True, exist_ok=True)
    out = OUTPUT / f"{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "started": stamp,
                "machine": hardware(),
                "machine_speed": {
                    "before": None
                    if speed_before is None
                    else speed_json(speed_before),
                    "after": None if speed_after is None else speed_json(speed_after),
                },
                "args": vars(args),
                "scenarios": {k: vars(v) for k, v in results.items()},
                "summary": rows,
            },
            indent=2,
            default=str,
        )
    )
    print(f"\nJSON: {out}")
    return results


def _machine_now(server_url: str, when: str) -> MachineSpeed | None:
    """The machine-speed probes, printed; a failing probe never costs the run."""
    try:
        speed = measure_machine(server_url)
    except Exception as error:
        print(f"   machine-speed probes {when} failed: {error!r}", flush=True)
        return None
    print(speed.report(f"This machine {when}"), flush=True)
    return speed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIOS,
        help="run only these (repeatable); default: all",
    )
    parser.add_argument("--orders", type=int, help="measured orders per scenario")
    parser.add_argument("--concurrency", type=int, default=64, help="S1 closed loop")
    parser.add_argument("--rate", type=float, help="S3/S4 open-loop orders per second")
    parser.add_argument(
        "--s3-replicas", type=int, default=1, help="router and executor replicas in S3"
    )
    parser.add_argument("--subscribers", type=int, default=5000, help="S4")
    parser.add_argument("--preload-events", type=int, default=1_000_000, help="S5")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a service setting in every scenario",
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
