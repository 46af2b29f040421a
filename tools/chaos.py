"""Chaos suite: the whole system with replicas, under load, while things break.

Runs 2 replicas of every service (gateway, router, executor, notifier) as processes
against real RabbitMQ and PostgreSQL, drives orders with venue and chain faults
injected, kill -9's random service processes at random moments (each restarted),
optionally restarts RabbitMQ and PostgreSQL mid-run, then audits what users and
auditors would check and prints a table. Exit code 1 when any invariant fails.

    python -m tools.chaos          # long: 2,000 orders, 20 kills, broker + db restarts
    python -m tools.chaos --short  # short form (also run by `make test`)
"""

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
from psycopg import AsyncConnection

from shared.domain.errors import InvalidTransitionError
from shared.domain.events import TERMINAL_STATUSES
from shared.domain.order import replay
from shared.eventstore.pool import open_pool
from shared.eventstore.postgres import PostgresEventStore
from shared.messaging.relay import relay_subscriber
from tools.databases import fresh_database
from tools.load import Load, LoadPlan, OrderRun
from tools.system import System, running_system

OUTPUT = Path(__file__).resolve().parents[1] / "test-output" / "chaos"

FAULTY_MARKET = {
    "QUOTE_DELAY_MS": "30",
    "QUOTE_FAILURE_RATE": "0.03",
    "SLOT_MS": "100",
    "BLOCKHASH_VALID_SLOTS": "150",
    "CONFIRM_MIN_MS": "200",
    "CONFIRM_MAX_MS": "600",
    "REBROADCAST_MS": "300",
    "FAULT_NETWORK_RATE": "0.05",
    "FAULT_SLIPPAGE_RATE": "0.05",
    "FAULT_DROP_RATE": "0.02",
    "BACKOFF_BASE_MS": "100",
    "RELAY_POLL_MS": "50",
    "EXECUTOR_CONCURRENCY": "64",
    "DB_POOL_SIZE": "6",
}
KILLABLE = ("router", "executor", "notifier", "gateway")
_PUBLISHED_WITHIN_S = 10.0


@dataclass(frozen=True)
class ChaosPlan:
    orders: int
    rate: float
    kills: int
    restart_broker: bool
    restart_database: bool
    settle_s: float = 120.0
    seed: int = 7


# Rates stay below what this engine sustains on a 2-core laptop (docs/benchmarks.md),
# so a backlog does not turn into expired blockhashes and hide the faults under test.
SHORT = ChaosPlan(
    orders=200, rate=10, kills=5, restart_broker=False, restart_database=False
)
LONG = ChaosPlan(
    orders=2000, rate=10, kills=20, restart_broker=True, restart_database=True
)


@dataclass
class ChaosReport:
    accepted: int = 0
    refused: int = 0
    in_store: int = 0
    terminal: int = 0
    confirmed: int = 0
    failed: int = 0
    not_terminal: list[str] = field(default_factory=list)
    invalid_replays: list[str] = field(default_factory=list)
    double_swaps: list[str] = field(default_factory=list)
    confirmed_without_swap: list[str] = field(default_factory=list)
    failed_with_swap: list[str] = field(default_factory=list)
    subscribers: int = 0
    resumed: int = 0
    ws_anomalies: Counter[str] = field(default_factory=Counter)
    ws_incomplete: int = 0
    events_appended: int = 0
    events_published: int = 0
    consumed: dict[str, str] = field(default_factory=dict)
    kills: list[str] = field(default_factory=list)
    infrastructure_restarts: list[str] = field(default_factory=list)
    settle_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            self.terminal == self.accepted
            and not self.invalid_replays
            and not self.double_swaps
            and not self.confirmed_without_swap
            and not self.failed_with_swap
            and not any(self.ws_anomalies.values())
            and self.ws_incomplete == 0
            and self.events_published == self.events_appended
        )

    def table(self) -> str:
        def verdict(good: bool) -> str:
            return "ok" if good else "FAIL"

        rows = [
            ("orders accepted", self.accepted, ""),
            ("orders refused (4xx)", self.refused, ""),
            (
                "orders in the store",
                self.in_store,
                verdict(self.in_store == self.accepted),
            ),
            (
                f"orders terminal (settled {self.settle_seconds:.1f}s after faults)",
                self.terminal,
                verdict(self.terminal == self.accepted),
            ),
            ("  confirmed / failed", f"{self.confirmed} / {self.failed}", ""),
            (
                "replays breaking the state machine",
                len(self.invalid_replays),
                verdict(not self.invalid_replays),
            ),
            (
                "orders with more than one landed swap",
                len(self.double_swaps),
                verdict(not self.double_swaps),
            ),
            (
                "confirmed orders without exactly their swap",
                len(self.confirmed_without_swap),
                verdict(not self.confirmed_without_swap),
            ),
            (
                "failed orders with a landed swap",
                len(self.failed_with_swap),
                verdict(not self.failed_with_swap),
            ),
            (
                "WS subscribers (resumed mid-stream)",
                f"{self.subscribers} ({self.resumed})",
                "",
            ),
            (
                "WS gaps / duplicates / out of order",
                "{gap} / {duplicate} / {out_of_order}".format(
                    gap=self.ws_anomalies["gap"],
                    duplicate=self.ws_anomalies["duplicate"],
                    out_of_order=self.ws_anomalies["out_of_order"],
                ),
                verdict(not any(self.ws_anomalies.values())),
            ),
            (
                "WS subscribers without the terminal status",
                self.ws_incomplete,
                verdict(self.ws_incomplete == 0),
            ),
            (
                "events appended / published",
                f"{self.events_appended} / {self.events_published}",
                verdict(self.events_published == self.events_appended),
            ),
            *(
                (f"events consumed by {s}", c, "")
                for s, c in sorted(self.consumed.items())
            ),
            ("processes killed (-9)", len(self.kills), ""),
            (
                "infrastructure restarts",
                ", ".join(self.infrastructure_restarts) or "none",
                "",
            ),
        ]
        width = max(len(r[0]) for r in rows)
        lines = [f"{'check'.ljust(width)}  {'value':>14}  verdict", "-" * (width + 26)]
        lines += [f"{name.ljust(width)}  {value!s:>14}  {v}" for name, value, v in rows]
        lines.append(f"RESULT: {'PASS' if self.ok else 'FAIL'}")
        return "\n".join(lines)


async def _kill_randomly(
    system: System, plan: ChaosPlan, duration: float, report: ChaosReport
) -> None:
    rng = random.Random(plan.seed)
    if plan.kills == 0:
        return
    gap = duration / (plan.kills + 1)
    for _ in range(plan.kills):
        await asyncio.sleep(rng.uniform(0.5, 1.5) * gap)
        instance = rng.choice([i for s in KILLABLE for i in system.instances(s)])
        await asyncio.to_thread(system.stop, instance, 9)
        report.kills.append(instance)
        await asyncio.sleep(rng.uniform(0.2, 1.5))
        await asyncio.to_thread(_supervise, system, instance)


def _supervise(system: System, instance: str, *, patience_s: float = 180) -> None:
    """Start an instance and, like a process supervisor, again whenever it exits.

    A service that starts while PostgreSQL or RabbitMQ is restarting exits; compose
    (restart policy) or an orchestrator starts it again, and so does this.
    """
    deadline = time.monotonic() + patience_s
    while True:
        system.start(instance)
        try:
            system.wait_ready(instance, timeout=max(1.0, deadline - time.monotonic()))
        except RuntimeError:
            if time.monotonic() >= deadline:
                raise
            system.processes.pop(instance, None)
            time.sleep(1.0)
            continue
        return


async def _restart_infrastructure(
    plan: ChaosPlan, duration: float, report: ChaosReport
) -> None:
    if plan.restart_broker:
        await asyncio.sleep(duration / 3)
        await asyncio.to_thread(_run, ["rabbitmqctl", "stop_app"])
        await asyncio.sleep(2)
        await asyncio.to_thread(_run, ["rabbitmqctl", "start_app"])
        report.infrastructure_restarts.append("rabbitmq")
    if plan.restart_database:
        await asyncio.sleep(duration / 3)
        await asyncio.to_thread(_restart_postgresql)
        report.infrastructure_restarts.append("postgresql")


def _restart_postgresql() -> None:
    _run(
        [
            "pg_ctlcluster",
            "--skip-systemctl-redirect",
            _postgresql_version(),
            "main",
            "restart",
            "-m",
            "fast",
        ]
    )


def _postgresql_version() -> str:
    """The newest cluster version under /etc/postgresql, compared as numbers."""
    versions = [path.name for path in Path("/etc/postgresql").iterdir()]
    return max(
        versions, key=lambda v: tuple(int(p) for p in v.split(".") if p.isdigit())
    )


LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", ""})


def infrastructure_restart_problems(
    plan: ChaosPlan, *, database_url: str, amqp_url: str
) -> list[str]:
    """Why this machine cannot restart the servers the plan would restart.

    The restarts act on this machine's own RabbitMQ and PostgreSQL
    (``rabbitmqctl``, ``pg_ctlcluster``): a system under test elsewhere would
    not be restarted at all, while the report said it was.
    """
    problems = []
    wanted = [
        (plan.restart_broker, "RabbitMQ", amqp_url, "rabbitmqctl"),
        (plan.restart_database, "PostgreSQL", database_url, "pg_ctlcluster"),
    ]
    for restart, server, url, command in wanted:
        if not restart:
            continue
        host = urlsplit(url).hostname or ""
        if host not in LOCAL_HOSTS:
            problems.append(f"{server} is at {host}, not on this machine")
        elif shutil.which(command) is None:
            problems.append(f"{command} is not installed here")
    if problems or not (plan.restart_broker or plan.restart_database):
        return problems
    if os.geteuid() != 0:
        problems.append("restarting the local servers takes root")
    return problems


def _run(command: list[str]) -> None:
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=120)  # noqa: S603
    except subprocess.CalledProcessError as error:
        output = (error.stderr or error.stdout or b"").decode(errors="replace")
        raise RuntimeError(
            f"{' '.join(command)} exited {error.returncode}: {output.strip()}"
        ) from None


async def _settle(database_url: str, order_ids: list[str], deadline_s: float) -> float:
    """Wait until every accepted order has a terminal status in the store."""
    started = time.monotonic()
    pending = set(order_ids)
    while pending and time.monotonic() - started < deadline_s:
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT DISTINCT stream_id::text FROM es.events"
                " WHERE event_type IN ('SwapConfirmed', 'OrderFailed')"
            ).fetchall()
        pending -= {row[0] for row in rows}
        if pending:
            await asyncio.sleep(0.5)
    return time.monotonic() - started


async def _published(conn: AsyncConnection[Any], namespace: str, head: int) -> int:
    """How far the relay recorded publishing, once it reached ``head`` (or gave up).

    The relay writes its checkpoint every RELAY_CHECKPOINT_MS, and after a failover
    only once a new leader has republished: it gets that long after the last order
    ended.
    """
    published_by = time.monotonic() + _PUBLISHED_WITHIN_S
    while True:
        cursor = await conn.execute(
            "SELECT position FROM es.checkpoints WHERE subscriber = %s",
            (relay_subscriber(namespace),),
        )
        row = await cursor.fetchone()
        published = int(row[0]) if row else 0
        if published >= head or time.monotonic() > published_by:
            return published
        await asyncio.sleep(0.1)


async def _audit(  # noqa: C901 - one audit, one pass over the orders
    system: System, runs: list[OrderRun], report: ChaosReport, namespace: str
) -> None:
    database_url = system.env["DATABASE_URL"]
    accepted = sorted({r.order_id for r in runs if r.order_id})
    report.accepted = len(accepted)
    report.refused = sum(1 for r in runs if r.refused)
    pool = open_pool(database_url, min_size=1, max_size=4)
    await pool.open(wait=True)
    try:
        store = PostgresEventStore(pool)
        report.events_appended = await store.head_position()
        async with pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT count(DISTINCT stream_id) FROM es.events"
            )
            row = await cursor.fetchone()
            report.in_store = int(row[0]) if row else 0
            report.events_published = await _published(
                conn, namespace, report.events_appended
            )
            cursor = await conn.execute(
                "SELECT order_id::text, array_agg(signature) FILTER (WHERE ok)"
                " FROM chain.ledger WHERE kind = 'order' GROUP BY order_id"
            )
            swaps = {
                order_id: list(sigs or []) for order_id, sigs in await cursor.fetchall()
            }
        for order_id in accepted:
            history = await store.read_stream(uuid.UUID(order_id))
            try:
                state = replay(e.event for e in history)
            except InvalidTransitionError:
                report.invalid_replays.append(order_id)
                continue
            landed = swaps.get(order_id, [])
            if len(landed) > 1:
                report.double_swaps.append(order_id)
            if state is None or state.status not in TERMINAL_STATUSES:
                report.not_terminal.append(order_id)
                continue
            report.terminal += 1
            if state.confirmation is not None:
                report.confirmed += 1
                if landed != [state.confirmation.tx_hash]:
                    report.confirmed_without_swap.append(order_id)
            else:
                report.failed += 1
                if landed:
                    report.failed_with_swap.append(order_id)
    finally:
        await pool.close()
    for run in runs:
        if run.order_id is None:
            continue
        report.subscribers += 1
        report.resumed += run.reconnects > 0
        report.ws_anomalies.update(run.anomalies())
        if run.terminal is None:
            report.ws_incomplete += 1
    report.consumed = await _consumed(system)


async def _consumed(system: System) -> dict[str, str]:
    """Events handled per service since each instance last started (from /metrics)."""
    totals: Counter[str] = Counter()
    async with httpx.AsyncClient(timeout=5) as client:
        for instance in system.processes:
            try:
                text = (
                    await client.get(
                        f"http://127.0.0.1:{system.port(instance)}/metrics"
                    )
                ).text
            except httpx.HTTPError:
                continue
            for line in text.splitlines():
                if line.startswith("oe_consumer_messages_total{"):
                    consumer = line.split('consumer="', 1)[1].split('"', 1)[0]
                    totals[consumer] += int(float(line.rsplit(" ", 1)[1]))
    return {
        service: f"{count} (since last restart)" for service, count in totals.items()
    }


async def run_chaos(
    plan: ChaosPlan, *, server_url: str, amqp_url: str, tag: str | None = None
) -> ChaosReport:
    run_id = tag or uuid.uuid4().hex[:8]
    namespace = f"oe-chaos-{run_id}"
    report = ChaosReport()
    with (
        fresh_database(server_url, f"oe_chaos_{run_id}") as database_url,
        running_system(
            database_url=database_url,
            amqp_url=amqp_url,
            namespace=namespace,
            logs=OUTPUT / run_id,
            settings=FAULTY_MARKET,
            replicas=dict.fromkeys(("gateway", "router", "executor", "notifier"), 2),
        ) as system,
    ):
        duration = plan.orders / plan.rate
        load = Load(
            api_urls=system.api_urls(),
            ws_urls=system.ws_urls(),
            plan=LoadPlan(
                orders=plan.orders,
                rate=plan.rate,
                body={"amount": 1, "tokenPair": "SOL-USDC", "type": "market"},
                late_connect_s=3.0,
                resume_share=0.3,
                timeout_s=duration + plan.settle_s,
                run_id=f"chaos-{run_id}",
                seed=plan.seed,
            ),
        )
        # A fault that cannot be injected ends the run at once, not after it.
        async with asyncio.TaskGroup() as running:
            running.create_task(_kill_randomly(system, plan, duration, report))
            running.create_task(_restart_infrastructure(plan, duration, report))
            loading = running.create_task(load.run())
        runs = loading.result()
        accepted = [r.order_id for r in runs if r.order_id]
        report.settle_seconds = await _settle(database_url, accepted, plan.settle_s)
        await _audit(system, runs, report, namespace)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="the short form")
    parser.add_argument("--orders", type=int)
    parser.add_argument("--rate", type=float)
    parser.add_argument("--kills", type=int)
    parser.add_argument("--no-infrastructure-restarts", action="store_true")
    args = parser.parse_args()
    plan = SHORT if args.short else LONG
    plan = ChaosPlan(
        orders=args.orders or plan.orders,
        rate=args.rate or plan.rate,
        kills=plan.kills if args.kills is None else args.kills,
        restart_broker=plan.restart_broker and not args.no_infrastructure_restarts,
        restart_database=plan.restart_database and not args.no_infrastructure_restarts,
    )
    server_url = os.environ.get(
        "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    amqp_url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    if problems := infrastructure_restart_problems(
        plan, database_url=server_url, amqp_url=amqp_url
    ):
        print(
            "chaos: cannot restart RabbitMQ and PostgreSQL mid-run: "
            + "; ".join(problems)
            + ". Run it as root on the machine that runs them, or pass"
            " --no-infrastructure-restarts (CHAOS_ARGS=--no-infrastructure-restarts).",
            file=sys.stderr,
        )
        sys.exit(2)
    print(f"chaos: {plan}", flush=True)
    report = asyncio.run(run_chaos(plan, server_url=server_url, amqp_url=amqp_url))
    print(report.table())
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
