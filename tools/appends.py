"""Appends through the store, grouped and one transaction each, side by side.

Each of ``--concurrency`` writers records orders of five events, one append per
status as the services do, on a fresh database. Prints appends/s, CPU per append
of this process and of PostgreSQL, and append latency p50/p99.

    .venv/bin/python -m tools.appends --concurrency 1 --concurrency 64
"""

import argparse
import asyncio
import time
import uuid
from collections.abc import Sequence

import uvloop

from shared.domain.envelope import NewEvent
from shared.domain.events import RoutingStarted
from shared.eventstore.pool import open_pool
from shared.eventstore.port import AppendResult
from shared.eventstore.postgres import APPEND_EVENTS, PostgresEventStore
from tools.bench import server_cpu
from tools.databases import fresh_database

STATUSES = 5


class OneTransactionEach(PostgresEventStore):
    """The store as it appended before group commit: one call, one commit each."""

    async def append(
        self, stream: uuid.UUID, events: Sequence[NewEvent], expected_version: int
    ) -> AppendResult:
        params = (
            stream,
            expected_version,
            [e.event_id for e in events],
            [e.event.type for e in events],
            [e.event.model_dump_json(by_alias=True) for e in events],
            [e.correlation_id for e in events],
            [e.causation_id for e in events],
        )
        async with self._pool.connection() as conn:
            cur = await conn.execute(APPEND_EVENTS, params)
            row = await cur.fetchone()
        if row is None:
            raise RuntimeError("es.append_events returned no row")
        return AppendResult(*row)


def event(attempt: int) -> list[NewEvent]:
    return [
        NewEvent(
            event_id=uuid.uuid4(),
            event=RoutingStarted(attempt=attempt),
            correlation_id=uuid.uuid4(),
        )
    ]


async def measure(
    kind: str, url: str, dbname: str, orders: int, concurrency: int
) -> str:
    pool = open_pool(url, min_size=8, max_size=8)
    await pool.open(wait=True)
    store = OneTransactionEach(pool) if kind == "one each" else PostgresEventStore(pool)
    todo = iter(range(orders))
    latencies: list[float] = []

    async def writer() -> None:
        for _ in todo:
            stream = uuid.uuid4()
            for version in range(STATUSES):
                events = event(version + 1)
                start = time.perf_counter()
                await store.append(stream, events, version)
                latencies.append(time.perf_counter() - start)

    try:
        await asyncio.gather(
            *(store.append(uuid.uuid4(), event(1), 0) for _ in range(50))
        )
        client, server = time.process_time(), server_cpu(dbname).get("postgres", 0.0)
        wall = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(concurrency)))
        wall = time.perf_counter() - wall
        client = time.process_time() - client
        server = server_cpu(dbname).get("postgres", 0.0) - server
    finally:
        await pool.close()
    n = len(latencies)
    latencies.sort()
    return (
        f"{kind:9} {concurrency:>11} {n / wall:>10.0f} {1000 * client / n:>12.3f}"
        f" {1000 * server / n:>14.3f} {1000 * latencies[n // 2]:>8.2f}"
        f" {1000 * latencies[int(n * 0.99)]:>8.2f}"
    )


async def run(args: argparse.Namespace) -> None:
    print(
        f"{'appends':9} {'concurrency':>11} {'appends/s':>10} {'client ms/op':>12}"
        f" {'postgres ms/op':>14} {'p50 ms':>8} {'p99 ms':>8}"
    )
    for concurrency in args.concurrency or [1, 8, 64]:
        for round_no in range(args.rounds):
            for kind in ("one each", "grouped"):
                dbname = f"oe_appends_{int(time.time())}_{round_no}_{concurrency}"
                dbname += "_one" if kind == "one each" else "_grouped"
                with fresh_database(args.server_url, dbname) as url:
                    print(
                        await measure(kind, url, dbname, args.orders, concurrency),
                        flush=True,
                    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--server-url", default="postgresql://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--concurrency", type=int, action="append")
    parser.add_argument("--orders", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2)
    uvloop.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
