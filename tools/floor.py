# ruff: noqa: PLR2004, S603 - a CLI report that starts its own test server
"""The architecture's floor: what an order costs here before any of our code runs.

Every order, whatever the code around it, is at least: five appends to the event
store (one per status), five publishes with confirms that the broker delivers seven
times (every event to a notifier, ``OrderAccepted`` to a router, ``RouteSelected``
to an executor), three round trips to the simulated chain (send, land, status), one
HTTP POST and one WebSocket session carrying five frames. This tool measures each of
those primitives alone, with the thinnest client the stack allows (psycopg with the
store's own append statement, aio-pika, a bare FastAPI + uvicorn app configured as
the services are), under concurrency as in S1, and adds them up per order.

The sum is a lower bound for the engine's CPU per order on this machine; the cores
divided by it bound S1's orders/s whatever the services do between the primitives.
Compare it with the engine's CPU per order in ``make bench`` (S1). The same bare app
also fans frames out to many firehose subscribers, with no buffer or task per
subscriber: its CPU per frame bounds S4's push latency from below.

    python -m tools.floor                 # make floor
    python -m tools.floor --ops 500 --rounds 1 --subscribers 500
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal

import aio_pika
import aiohttp
from fastapi import FastAPI, WebSocket
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field
from websockets.asyncio.client import ClientConnection, connect

from shared.domain.events import (
    OrderAccepted,
    RouteSelected,
    RoutingStarted,
    SwapConfirmed,
    TransactionSubmitted,
)
from shared.eventstore.postgres import APPEND_EVENTS
from shared.messaging.topology import ALL_ORDER_EVENTS, routing_key
from tools.bench import raise_fd_limit, server_cpu, table
from tools.databases import fresh_database
from tools.machine import hardware, proc_stat
from tools.system import free_port

OUTPUT = Path(__file__).resolve().parents[1] / "test-output" / "floor"
# An order's events from pending to confirmed, one per status.
EVENT_TYPES = tuple(
    event.__name__
    for event in (
        OrderAccepted,
        RoutingStarted,
        RouteSelected,
        TransactionSubmitted,
        SwapConfirmed,
    )
)
FRAMES_PER_SESSION = len(EVENT_TYPES)
CONCURRENCY = 32
PUBLISHES_IN_FLIGHT = 64  # the relay's default publish concurrency
FANOUT_FRAMES = 20  # frames to every firehose subscriber per round
S4_SUBSCRIBERS = 5000
# An event as recorded is a few hundred bytes of JSON.
EVENT_BODY = json.dumps(
    {
        "type": "RouteSelected",
        "attempt": 1,
        "venue": "raydium",
        "amountIn": "1",
        "expectedOut": "151.234567",
        "minOut": "150.478394",
        "feeBps": 25,
        "quotes": [
            {"venue": v, "out": "151.2", "feeBps": 25} for v in ("raydium", "meteora")
        ],
        "orderId": str(uuid.uuid4()),
    }
)
FRAME = json.dumps(
    {
        "orderId": str(uuid.uuid4()),
        "status": "routing",
        "version": 2,
        "position": 1234,
        "at": datetime.now(UTC).isoformat(),
        "event": json.loads(EVENT_BODY),
    }
)


# --- the bare web app, run in its own process as the services are ---------------


class OrderRequest(BaseModel):
    amount: Decimal = Field(gt=0)
    token_pair: str = Field(alias="tokenPair", pattern=r"^[A-Z]{2,10}-[A-Z]{2,10}$")
    type: Literal["market"] = "market"


def web_app() -> FastAPI:
    app = FastAPI()

    @app.post("/api/orders/execute", status_code=202)
    async def execute(order: OrderRequest) -> dict[str, str]:  # noqa: ARG001 - validated only
        return {"orderId": str(uuid.uuid4()), "status": "pending"}

    @app.websocket("/ws/orders/{order_id}")
    async def order_events(ws: WebSocket, order_id: str) -> None:  # noqa: ARG001 - in the route
        await ws.accept()
        for _ in range(FRAMES_PER_SESSION):
            await ws.send_text(FRAME)
        await ws.close(code=1000)

    firehose: set[WebSocket] = set()

    @app.websocket("/ws/orders")
    async def all_events(ws: WebSocket) -> None:
        await ws.accept()
        firehose.add(ws)
        try:
            while (await ws.receive())["type"] != "websocket.disconnect":
                pass
        finally:
            firehose.discard(ws)

    @app.post("/fanout")
    async def fanout(frames: int) -> dict[str, int]:
        # The thinnest fan-out there is: no buffer and no task per subscriber.
        for _ in range(frames):
            for ws in list(firehose):
                await ws.send_text(FRAME)
        return {"sent": frames * len(firehose)}

    return app


def serve(port: int) -> None:
    import uvicorn  # noqa: PLC0415 - only in the server process

    # As shared.service.app.serve runs the services (uvloop, httptools, no deflate).
    uvicorn.run(
        web_app(),
        host="127.0.0.1",
        port=port,
        log_config=None,
        log_level="warning",
        access_log=False,
        ws_per_message_deflate=False,
    )


# --- measuring -----------------------------------------------------------------


PARTS = ("client", "server", "postgres", "rabbitmq")
DATABASE = ("client", "postgres")
BROKER = ("client", "rabbitmq")
WEB = ("server",)


@dataclass
class Primitive:
    name: str
    per_order: float  # how many times one order needs it
    ops: int
    # The processes it runs in that belong to the engine; the rest of the machine's
    # time in its window (the other servers' idle work) is shown, not counted.
    engine_parts: tuple[str, ...]
    rounds: list[dict[str, float]] = field(default_factory=list)  # ms per op by part

    def median(self, part: str) -> float:
        return statistics.median(r[part] for r in self.rounds)

    @property
    def engine(self) -> float:
        """ms of CPU per op in the engine's processes, PostgreSQL and RabbitMQ."""
        return sum(self.median(part) for part in self.engine_parts)


@dataclass
class Meter:
    """CPU seconds of this process, a server process, PostgreSQL and RabbitMQ."""

    dbname: str
    server_pid: int | None = None

    def sample(self) -> dict[str, float]:
        client = time.process_time()  # before the /proc scan, which is ours too
        servers = server_cpu(self.dbname)
        stat = proc_stat(self.server_pid) if self.server_pid is not None else None
        return {
            "client": client,
            "server": stat[2] if stat is not None else 0.0,
            "postgres": servers.get("postgres", 0.0),
            "rabbitmq": servers.get("rabbitmq", 0.0),
        }


async def measure(
    meter: Meter, primitive: Primitive, run: Callable[[], Awaitable[None]]
) -> None:
    before = meter.sample()
    await run()
    after = meter.sample()
    primitive.rounds.append(
        {part: 1000 * (after[part] - before[part]) / primitive.ops for part in PARTS}
    )


async def in_parallel(
    count: int, concurrency: int, one: Callable[[int], Awaitable[None]]
) -> None:
    next_index = iter(range(count))

    async def worker() -> None:
        for i in next_index:
            await one(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


# --- the primitives --------------------------------------------------------------


async def appends(pool: AsyncConnectionPool, streams: int) -> None:
    """Each stream gets its five events one append at a time, as an order does."""

    async def one_order(_: int) -> None:
        stream = uuid.uuid4()
        correlation = uuid.uuid4()
        for version, event_type in enumerate(EVENT_TYPES):
            async with pool.connection() as conn:
                await conn.execute(
                    APPEND_EVENTS,
                    (
                        stream,
                        version,
                        [uuid.uuid4()],
                        [event_type],
                        [EVENT_BODY],
                        [correlation],
                        [None],
                    ),
                )

    await in_parallel(streams, CONCURRENCY, one_order)


async def round_trips(pool: AsyncConnectionPool, count: int) -> None:
    async def one(_: int) -> None:
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")

    await in_parallel(count, CONCURRENCY, one)


@dataclass
class Broker:
    """The project's routing for five events, on queues of this run's own."""

    url: str
    namespace: str
    publisher: aio_pika.abc.AbstractConnection | None = None
    consumer: aio_pika.abc.AbstractConnection | None = None
    delivered: int = 0
    expected: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def open(self) -> aio_pika.abc.AbstractExchange:
        self.publisher = await aio_pika.connect(self.url)
        self.consumer = await aio_pika.connect(self.url)
        channel = await self.publisher.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            f"{self.namespace}.events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        inbox = await self.consumer.channel()
        await inbox.set_qos(prefetch_count=PUBLISHES_IN_FLIGHT)
        # Work queues are durable quorum queues with acks; a notifier's feed is
        # its own exclusive queue.
        for name, key, ack in (
            ("router", routing_key(OrderAccepted.__name__), True),
            ("executor", routing_key(RouteSelected.__name__), True),
            ("notifier", ALL_ORDER_EVENTS, False),
        ):
            queue = await inbox.declare_queue(
                f"{self.namespace}.{name}",
                durable=ack,
                exclusive=not ack,
                arguments={"x-queue-type": "quorum"} if ack else None,
            )
            await queue.bind(f"{self.namespace}.events", routing_key=key)
            await queue.consume(
                self._on_delivery_acked if ack else self._on_delivery, no_ack=not ack
            )
        return exchange

    async def _on_delivery_acked(
        self, message: aio_pika.abc.AbstractIncomingMessage
    ) -> None:
        await message.ack()
        self._count()

    async def _on_delivery(
        self, _message: aio_pika.abc.AbstractIncomingMessage
    ) -> None:
        self._count()

    def _count(self) -> None:
        self.delivered += 1
        if self.delivered >= self.expected:
            self.done.set()

    async def close(self) -> None:
        """Delete what this run declared; close whatever connections it opened."""
        if self.consumer is not None:
            await self.consumer.close()  # the notifier's queue goes with it
        if self.publisher is not None:
            channel = await self.publisher.channel()
            for name in ("router", "executor"):
                await channel.queue_delete(f"{self.namespace}.{name}")
            await channel.exchange_delete(f"{self.namespace}.events")
            await self.publisher.close()


async def publishes(
    broker: Broker, exchange: aio_pika.abc.AbstractExchange, orders: int
) -> None:
    """Five persistent publishes with confirms per order; wait for every delivery."""
    broker.delivered, broker.expected = 0, orders * 7
    broker.done.clear()
    in_flight = asyncio.Semaphore(PUBLISHES_IN_FLIGHT)
    body = EVENT_BODY.encode()

    async def publish(event_type: str) -> None:
        async with in_flight:
            await exchange.publish(
                aio_pika.Message(
                    body,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=str(uuid.uuid4()),
                    content_type="application/json",
                ),
                routing_key=routing_key(event_type),
                mandatory=True,
            )

    async with asyncio.TaskGroup() as group:
        for _ in range(orders):
            for event_type in EVENT_TYPES:
                group.create_task(publish(event_type))
    await asyncio.wait_for(broker.done.wait(), 60)


async def posts(client: aiohttp.ClientSession, count: int) -> None:
    body = {"amount": 1, "tokenPair": "SOL-USDC", "type": "market"}

    async def one(_: int) -> None:
        async with client.post("/api/orders/execute", json=body) as response:
            await response.read()
            if response.status != 202:
                raise RuntimeError(f"POST answered {response.status}")

    await in_parallel(count, CONCURRENCY, one)


async def sessions(ws_url: str, count: int) -> None:
    async def one(_: int) -> None:
        async with connect(
            f"{ws_url}/ws/orders/{uuid.uuid4()}", compression=None
        ) as ws:
            frames = [message async for message in ws]
        if len(frames) != FRAMES_PER_SESSION:
            raise RuntimeError(f"a session carried {len(frames)} frames")

    await in_parallel(count, CONCURRENCY, one)


@dataclass
class Firehose:
    """Subscribers of the bare app's firehose, counting the frames they receive."""

    ws_url: str
    subscribers: int
    received: int = 0
    expected: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    readers: list["asyncio.Task[None]"] = field(default_factory=list)

    async def open(self) -> None:
        gate = asyncio.Semaphore(50)
        opened: list[ClientConnection] = []

        async def one() -> None:
            async with gate:
                opened.append(
                    await connect(f"{self.ws_url}/ws/orders", compression=None)
                )

        try:
            await asyncio.gather(*(one() for _ in range(self.subscribers)))
        except BaseException:
            await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)
            raise
        self.readers = [asyncio.create_task(self._read(ws)) for ws in opened]

    async def _read(self, ws: ClientConnection) -> None:
        async with ws:
            async for _ in ws:
                self.received += 1
                if self.received >= self.expected:
                    self.done.set()

    async def frames(self, client: aiohttp.ClientSession, per_subscriber: int) -> None:
        self.done.clear()
        self.expected = self.received + per_subscriber * self.subscribers
        async with client.post("/fanout", params={"frames": per_subscriber}) as answer:
            sent = (await answer.json())["sent"]
        if sent != per_subscriber * self.subscribers:
            raise RuntimeError(f"the fan-out reached {sent}")
        await asyncio.wait_for(self.done.wait(), 120)

    async def close(self) -> None:
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


# --- the run -----------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, object]:
    """Start the bare web app in its own process, measure, and report."""
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    raise_fd_limit()  # for the firehose subscribers; the server inherits it
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tools.floor", "--serve", str(port)]
    )
    try:
        primitives = asyncio.run(_measure_all(args, run_id, port, server.pid))
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return report(run_id, primitives, args)


async def _measure_all(
    args: argparse.Namespace, run_id: str, port: int, server_pid: int
) -> dict[str, Primitive]:
    dbname = f"oe_floor_{run_id.lower()}"
    ops = args.ops
    primitives = {
        "append": Primitive(
            "append: 1 event, its own transaction", 5, ops * 5, DATABASE
        ),
        "round trip": Primitive(
            "round trip: SELECT 1 (chain: send, land, status)", 3, ops, DATABASE
        ),
        "messaging": Primitive(
            "5 publishes with confirms, 7 deliveries", 1, ops, BROKER
        ),
        # For HTTP and WebSocket the client is the load generator, not the engine.
        "post": Primitive("HTTP POST /api/orders/execute", 1, ops, WEB),
        "session": Primitive(
            f"WebSocket session, {FRAMES_PER_SESSION} frames", 1, ops, WEB
        ),
        "fanout": Primitive(
            f"fan-out: 1 frame to 1 of {args.subscribers} firehose subscribers",
            0,  # S4's cost, not S1's
            args.subscribers * FANOUT_FRAMES,
            WEB,
        ),
    }
    broker = Broker(args.amqp_url, f"oe-floor-{run_id}")
    firehose = Firehose(f"ws://127.0.0.1:{port}", args.subscribers)
    try:
        with fresh_database(args.server_url, dbname) as url:
            meter = Meter(dbname, server_pid)
            async with (
                AsyncConnectionPool(
                    url,
                    min_size=16,
                    max_size=16,
                    kwargs={"autocommit": True},
                    open=False,
                ) as pool,
                aiohttp.ClientSession(
                    base_url=f"http://127.0.0.1:{port}",
                    connector=aiohttp.TCPConnector(limit=CONCURRENCY),
                ) as client,
            ):
                await _until_serving(client)
                exchange = await broker.open()
                await firehose.open()
                runs: dict[str, Callable[[], Awaitable[None]]] = {
                    "append": lambda: appends(pool, ops),
                    "round trip": lambda: round_trips(pool, ops),
                    "messaging": lambda: publishes(broker, exchange, ops),
                    "post": lambda: posts(client, ops),
                    "session": lambda: sessions(f"ws://127.0.0.1:{port}", ops),
                    "fanout": lambda: firehose.frames(client, FANOUT_FRAMES),
                }
                for go in runs.values():  # warm every path once
                    await go()
                for round_no in range(args.rounds):
                    for key, go in runs.items():
                        await measure(meter, primitives[key], go)
                    print(f"   round {round_no + 1}/{args.rounds} done", flush=True)
    finally:
        await firehose.close()
        await broker.close()
    return primitives


async def _until_serving(client: aiohttp.ClientSession) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            async with client.get("/openapi.json") as answer:
                await answer.read()
        except aiohttp.ClientConnectionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
        else:
            return


def report(
    run_id: str, primitives: dict[str, Primitive], args: argparse.Namespace
) -> dict[str, object]:
    cores = os.cpu_count() or 1
    rows: list[tuple[object, ...]] = []
    engine_total = 0.0
    for p in primitives.values():
        engine_total += p.engine * p.per_order
        rows.append(
            (
                p.name,
                p.ops,
                *(f"{p.median(part):.4f}" for part in PARTS),
                f"{p.engine:.4f}",
                p.per_order,
                round(p.engine * p.per_order, 2),
            )
        )
    rows.append(("floor per order", "", "", "", "", "", "", "", round(engine_total, 2)))
    print(
        f"\n== The architecture's floor on this machine ({cores} cores),"
        f" CPU ms per op, median of {args.rounds} rounds"
    )
    print(
        table(
            rows,
            (
                "primitive",
                "ops",
                "client",
                "web server",
                "postgres",
                "rabbitmq",
                "engine/op",
                "per order",
                "engine ms/order",
            ),
        )
    )
    ceiling = 1000 * cores / engine_total
    print(
        "\n   client: this process (psycopg, aio-pika); for HTTP and WebSocket, the"
        "\n   load generator's aiohttp and websockets clients, not the engine's."
        "\n   engine/op counts the processes a primitive runs in: client and postgres"
        "\n   for the store, client and rabbitmq for messages, the web server for HTTP"
        "\n   and WebSocket; the other columns are the rest of the machine meanwhile."
        f"\n   S1 ceiling at the floor: {cores} cores / {engine_total:.2f} ms ="
        f" {ceiling:.0f} orders/s for the engine alone, before any load generator;"
        f"\n   the S1 target, 300 orders/s, leaves {1000 * cores / 300:.2f} ms/order."
        "\n   What `make bench` measures above the floor (S1's engine CPU per order) is"
        "\n   the services' own work between the primitives."
    )
    fanout = primitives["fanout"]
    burst = FRAMES_PER_SESSION * S4_SUBSCRIBERS
    server_ms = burst * fanout.median("server")
    clients_ms = burst * fanout.median("client")
    print(
        f"   S4 at the floor: an order's {FRAMES_PER_SESSION} events to"
        f" {S4_SUBSCRIBERS} subscribers are {burst} frames: {server_ms:.0f} ms of"
        f" server CPU on one core,\n   and {clients_ms:.0f} ms of the subscribers'"
        " CPU when they share the cores (S4's push p99 target: 100 ms)."
    )
    result: dict[str, object] = {
        "run_id": run_id,
        "machine": hardware(),
        "rounds": args.rounds,
        "primitives": {k: asdict(p) for k, p in primitives.items()},
        "floor_engine_ms_per_order": engine_total,
        "ceiling_orders_per_s": ceiling,
        "s4_burst_server_ms": server_ms,
        "s4_burst_subscribers_ms": clients_ms,
    }
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / f"{run_id}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"\nJSON: {path}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--ops",
        type=int,
        default=2000,
        help="orders' worth of each primitive per round",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="the median over rounds is reported"
    )
    parser.add_argument(
        "--subscribers", type=int, default=1000, help="firehose subscribers"
    )
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return
    args.server_url = os.environ.get(
        "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    args.amqp_url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    run(args)


if __name__ == "__main__":
    main()
