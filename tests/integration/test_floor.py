"""`make floor` measures each primitive, prints the floor per order, leaves nothing."""

import argparse
import asyncio
import json
from pathlib import Path

import aio_pika
import psycopg
import pytest
from aiormq.exceptions import ChannelNotFoundEntity

from tools.floor import run

pytestmark = pytest.mark.integration

PRIMITIVES = (
    "append: 1 event, its own transaction",
    "round trip: SELECT 1",
    "5 publishes with confirms, 7 deliveries",
    "HTTP POST /api/orders/execute",
    "WebSocket session, 5 frames",
)


def test_the_floor_prints_every_primitive_and_cleans_up(
    infrastructure: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    server_url, amqp_url = infrastructure
    args = argparse.Namespace(
        ops=40, rounds=1, subscribers=50, server_url=server_url, amqp_url=amqp_url
    )

    result = run(args)

    printed = capsys.readouterr().out
    for name in PRIMITIVES:
        assert name in printed
    floor_row = next(line for line in printed.splitlines() if "floor per order" in line)
    floor = float(floor_row.split()[-1])
    assert floor == pytest.approx(result["floor_engine_ms_per_order"], rel=0.01)
    assert floor > 0
    assert "S1 ceiling at the floor" in printed
    saved = json.loads(Path(printed.split("JSON: ")[1].strip()).read_text())
    cores = saved["machine"]["nproc"]
    assert saved["ceiling_orders_per_s"] == pytest.approx(
        1000 * cores / floor, rel=0.01
    )

    run_id = result["run_id"]
    assert isinstance(run_id, str)
    with psycopg.connect(server_url) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s",
            (f"oe_floor_{run_id.lower()}",),
        ).fetchone()
    assert left == (0,)
    namespace = f"oe-floor-{run_id}"
    assert asyncio.run(_left_on_broker(amqp_url, namespace)) == []


async def _left_on_broker(amqp_url: str, namespace: str) -> list[str]:
    left = []
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for queue in ("router", "executor", "notifier"):
            channel = await connection.channel()  # a failed check closes it
            try:
                await channel.declare_queue(f"{namespace}.{queue}", passive=True)
                left.append(queue)
            except ChannelNotFoundEntity:
                pass
        channel = await connection.channel()
        try:
            await channel.get_exchange(f"{namespace}.events", ensure=True)
            left.append("events")
        except ChannelNotFoundEntity:
            pass
    return left
