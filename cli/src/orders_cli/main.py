"""The ``orders`` command (typer): submit, list, show, history, watch, load.

Exit codes: 0 success (``submit``: the order confirmed), 1 the order failed (``load``:
some order did not reach a terminal status), 2 usage or API errors (a 422 prints the
field it names), 3 gave up waiting (``submit --timeout``), 130 interrupted.
"""

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from enum import StrEnum
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from orders_cli import render
from orders_cli.client import GENERATED_KEY_PREFIX, ApiError, Frame, OrdersClient
from orders_cli.load import LoadSummary, OrderOutcome, run_load

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_INTERRUPTED = 130

T = TypeVar("T")

app = typer.Typer(
    name="orders",
    help="Submit, follow and inspect orders on a running order execution engine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

out = Console()
err = Console(stderr=True)


class Side(StrEnum):
    SELL = "sell"
    BUY = "buy"


class Status(StrEnum):
    PENDING = "pending"
    ROUTING = "routing"
    BUILDING = "building"
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    FAILED = "failed"


JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Machine-readable output only: one JSON document, or JSON lines"
        " for streams.",
    ),
]
ApiUrlOption = Annotated[
    str,
    typer.Option("--api-url", envvar="ORDERS_API_URL", help="The gateway's base URL."),
]
WsUrlOption = Annotated[
    str | None,
    typer.Option(
        "--ws-url",
        envvar="ORDERS_WS_URL",
        help="The notifier's base URL (default: notifierUrl from GET /api/config).",
        show_default=False,
    ),
]
DEFAULT_API_URL = "http://localhost:3000"


def emit(document: object) -> None:
    """One JSON document (or one line of a JSON-lines stream) on stdout."""
    sys.stdout.write(json.dumps(document, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _reader_gone() -> NoReturn:
    """The reader of stdout left (``orders watch --json | head``): stop quietly.

    Python would report the broken pipe again when it flushes stdout at exit, so
    stdout is pointed at /dev/null first.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise typer.Exit(EXIT_OK)


def fail(error: ApiError, *, as_json: bool) -> NoReturn:
    """Report an API error on stderr and exit 2."""
    if as_json:
        sys.stderr.write(json.dumps(error.as_json()) + "\n")
    else:
        label = f"HTTP {error.status}" if error.status else "error"
        err.print(Text.assemble((f"{label}: ", "bold red"), error.message))
    raise typer.Exit(EXIT_USAGE)


def run(coroutine: Callable[[], Coroutine[Any, Any, T]], *, as_json: bool) -> T:
    """Run one command's coroutine; API errors exit 2, Ctrl-C exits 130."""
    try:
        return asyncio.run(coroutine())
    except ApiError as error:
        fail(error, as_json=as_json)
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except BrokenPipeError:
        _reader_gone()


def order_body(
    *,
    pair: str,
    amount: str,
    side: Side,
    slippage_bps: int | None,
    client_order_id: str | None,
) -> dict[str, Any]:
    """The POST body. ``amount`` goes as the string typed: the API validates it."""
    body: dict[str, Any] = {
        "amount": amount,
        "tokenPair": pair,
        "type": "market",
        "side": side.value,
    }
    if slippage_bps is not None:
        body["slippageBps"] = slippage_bps
    if client_order_id:
        body["clientOrderId"] = client_order_id
    return body


@app.command()
def submit(  # noqa: PLR0917 - one parameter per CLI option
    amount: Annotated[
        str,
        typer.Option("--amount", help="Amount of the base token.", show_default=False),
    ],
    pair: Annotated[str, typer.Option("--pair", help="Token pair.")] = "SOL-USDC",
    side: Annotated[
        Side,
        typer.Option("--side", help="sell: spend exactly amount; buy: receive it."),
    ] = Side.SELL,
    slippage_bps: Annotated[
        int | None,
        typer.Option(
            "--slippage-bps",
            help="Slippage tolerance (API default: 50).",
            show_default=False,
        ),
    ] = None,
    client_order_id: Annotated[
        str | None,
        typer.Option(
            "--client-order-id",
            help="Idempotency key (default: a new one per submit, printed when the"
            " answer is lost, so the order can be asked for again, never twice).",
            show_default=False,
        ),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow/--no-follow", help="Stream statuses until done.")
    ] = True,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to follow before giving up.")
    ] = 120,
    as_json: JsonOption = False,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    ws_url: WsUrlOption = None,
) -> None:
    """Submit a market order and follow it live until confirmed or failed.

    Exits 0 when confirmed, 1 when failed, 2 on a usage or API error, 3 on timeout.
    """
    key = client_order_id or f"{GENERATED_KEY_PREFIX}{uuid.uuid4()}"
    body = order_body(
        pair=pair,
        amount=amount,
        side=side,
        slippage_bps=slippage_bps,
        client_order_id=key,
    )

    async def go() -> int:
        async with OrdersClient(api_url, ws_url) as client:
            receipt = await _submitted(client, body, key)
            order_id = str(receipt["orderId"])
            if not follow:
                if as_json:
                    emit(receipt)
                else:
                    out.print(
                        Text.assemble(
                            ("submitted ", "dim"),
                            order_id,
                            " ",
                            render.status_text(str(receipt["status"])),
                            f"  ws: {receipt['links']['ws']}",
                        ),
                        soft_wrap=True,
                    )
                return EXIT_OK
            frames = await _follow(
                client, order_id, give_up_after=timeout, as_json=as_json
            )
            if not frames or frames[-1]["status"] not in {"confirmed", "failed"}:
                reached = frames[-1]["status"] if frames else "pending"
                message = f"order {order_id} still {reached} after {timeout:g}s"
                if as_json:
                    sys.stderr.write(json.dumps(ApiError(message).as_json()) + "\n")
                else:
                    err.print(Text(message, style="bold yellow"))
                return EXIT_TIMEOUT
            return EXIT_OK if frames[-1]["status"] == "confirmed" else EXIT_FAILED

    raise typer.Exit(run(go, as_json=as_json))


async def _submitted(
    client: OrdersClient, body: dict[str, Any], key: str
) -> dict[str, Any]:
    """The receipt; an answer that never came says how to find out what happened."""
    try:
        return await client.submit(body)
    except ApiError as error:
        if not error.unanswered:
            raise
        raise ApiError(
            f"{error.message}; the order may have been recorded: submit again with"
            f" --client-order-id {key} to get it back (it is never placed twice)",
            detail={"clientOrderId": key},
            unanswered=True,
        ) from None


async def _follow(
    client: OrdersClient, order_id: str, *, give_up_after: float, as_json: bool
) -> list[Frame]:
    """Stream one order's frames: JSON lines, or a live timeline table."""
    frames: list[Frame] = []
    started = time.monotonic()

    async def collect(on_frame: Callable[[Frame], None]) -> None:
        try:
            async with asyncio.timeout(give_up_after):
                async for frame in client.follow(order_id):
                    frames.append(frame)
                    on_frame(frame)
        except TimeoutError:
            pass

    if as_json:
        await collect(emit)
        return frames

    out.print(Text.assemble(("order ", "dim"), (order_id, "bold")))
    if not out.is_terminal:
        # Piped or captured: one line per status, as it happens.
        await collect(
            lambda frame: out.print(
                render.timeline_line(frame, frames[0]["at"]), soft_wrap=True
            )
        )
        out.print(render.outcome(frames), soft_wrap=True)
        return frames

    def view() -> Table:
        done = bool(frames) and frames[-1]["status"] in {"confirmed", "failed"}
        waiting = None if done else _since_submit(frames, started)
        return render.timeline(frames, waiting=waiting)

    with Live(get_renderable=view, console=out, refresh_per_second=8) as live:
        await collect(lambda _frame: live.refresh())
    out.print(render.outcome(frames))
    return frames


def _since_submit(frames: list[Frame], started: float) -> float:
    """Time since submit for the waiting row: server clock once a frame is known."""
    if not frames:
        return time.monotonic() - started
    first = render.parse_at(frames[0]["at"])
    latest = render.parse_at(frames[-1]["at"])
    shown = (latest - first).total_seconds()
    return max(shown, time.monotonic() - started)


@app.command("list")
def list_orders(
    status: Annotated[
        Status | None, typer.Option("--status", help="Only orders in this status.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=1000, help="How many, newest first.")
    ] = 20,
    before: Annotated[
        str | None,
        typer.Option(
            "--before",
            help="The next page: the cursor the previous page printed (nextCursor).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Recent orders, newest first (from the gateway's read model)."""

    async def go() -> dict[str, Any]:
        async with OrdersClient(api_url) as client:
            return await client.orders(
                status=status.value if status else None, limit=limit, before=before
            )

    listed = run(go, as_json=as_json)
    if as_json:
        emit(listed)
    else:
        out.print(render.orders_table(listed))


@app.command()
def show(
    order_id: Annotated[str, typer.Argument(help="The order id.", show_default=False)],
    as_json: JsonOption = False,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """One order folded from its events: quotes, route plan, attempts, amounts."""

    async def go() -> dict[str, Any]:
        async with OrdersClient(api_url) as client:
            return await client.order(order_id)

    order = run(go, as_json=as_json)
    if as_json:
        emit(order)
    else:
        out.print(render.order_view(order))


@app.command()
def history(
    order_id: Annotated[str, typer.Argument(help="The order id.", show_default=False)],
    as_json: JsonOption = False,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Every event of one order, as the WebSocket frames them."""

    async def go() -> list[Frame]:
        async with OrdersClient(api_url) as client:
            return await client.events(order_id)

    events = run(go, as_json=as_json)
    if as_json:
        emit({"events": events})
    else:
        out.print(render.history_table(events))


@app.command()
def watch(
    after: Annotated[
        int | None,
        typer.Option(
            "--after",
            min=0,
            help="Replay from this global position (default: live only).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit", min=1, help="Stop after this many events.", show_default=False
        ),
    ] = None,
    as_json: JsonOption = False,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    ws_url: WsUrlOption = None,
) -> None:
    """Every order's events, live (the firehose). Ctrl-C stops."""

    async def go() -> None:
        async with OrdersClient(api_url, ws_url) as client:
            if not as_json:
                err.print(
                    Text(
                        f"watching {await client.ws_url()}/ws/orders"
                        + (f"?after={after}" if after is not None else "")
                        + " (Ctrl-C stops)",
                        style="dim",
                    )
                )
            seen = 0
            async for frame in client.firehose(after=after):
                if as_json:
                    emit(frame)
                else:
                    out.print(render.firehose_line(frame), soft_wrap=True)
                seen += 1
                if limit is not None and seen >= limit:
                    return

    try:
        run(go, as_json=as_json)
    except typer.Exit as stop:
        if stop.exit_code == EXIT_INTERRUPTED:
            raise typer.Exit(EXIT_OK) from None
        raise


@app.command()
def load(  # noqa: PLR0917 - one parameter per CLI option
    count: Annotated[
        int, typer.Option("--count", min=1, help="Orders to submit.")
    ] = 200,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Orders in flight at once.")
    ] = 20,
    pair: Annotated[str, typer.Option("--pair", help="Token pair.")] = "SOL-USDC",
    amount: Annotated[str, typer.Option("--amount", help="Amount per order.")] = "1",
    side: Annotated[Side, typer.Option("--side")] = Side.SELL,
    slippage_bps: Annotated[
        int | None, typer.Option("--slippage-bps", show_default=False)
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            help="Seconds per order (waits for capacity included) before timed-out.",
        ),
    ] = 120,
    as_json: JsonOption = False,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    ws_url: WsUrlOption = None,
) -> None:
    """Submit many orders with bounded concurrency, follow each, summarize.

    An order the engine has no room for yet (503 with Retry-After) waits as asked
    and is submitted again; the summary counts the orders that waited.
    Exits 0 when every order reached confirmed or failed, 1 when some timed out or
    were refused, 2 when the API refused the order's parameters (422).
    """
    body = order_body(
        pair=pair,
        amount=amount,
        side=side,
        slippage_bps=slippage_bps,
        client_order_id=None,
    )

    async def go() -> int:
        async with OrdersClient(api_url, ws_url) as client:
            if as_json:
                summary = await run_load(
                    client,
                    lambda _i: body,
                    count=count,
                    concurrency=concurrency,
                    give_up_after=timeout,
                )
            else:
                summary = await _load_with_progress(
                    client,
                    body,
                    count=count,
                    concurrency=concurrency,
                    give_up_after=timeout,
                )
        invalid = [o for o in summary.outcomes if o.http_status == 422]  # noqa: PLR2004
        if invalid and len(invalid) == summary.count:
            raise ApiError(invalid[0].reason or "invalid order", status=422)
        if as_json:
            emit(summary.as_json())
        else:
            out.print(render.load_table(summary))
        return EXIT_OK if summary.terminal == summary.count else EXIT_FAILED

    raise typer.Exit(run(go, as_json=as_json))


async def _load_with_progress(
    client: OrdersClient,
    body: dict[str, Any],
    *,
    count: int,
    concurrency: int,
    give_up_after: float,
) -> LoadSummary:
    progress = Progress(
        TextColumn("[bold]load"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[green]{task.fields[confirmed]} confirmed"),
        TextColumn("[red]{task.fields[failed]} failed"),
        TextColumn("[yellow]{task.fields[other]} other"),
        TimeElapsedColumn(),
        console=out,
    )
    tally = {"confirmed": 0, "failed": 0, "other": 0}
    with progress:
        task = progress.add_task("orders", total=count, **_fields(tally))

        def done(outcome: OrderOutcome) -> None:
            key = outcome.status if outcome.status in tally else "other"
            tally[key] += 1
            progress.update(task, advance=1, **_fields(tally))

        return await run_load(
            client,
            lambda _i: body,
            count=count,
            concurrency=concurrency,
            give_up_after=give_up_after,
            on_done=done,
        )


def _fields(tally: dict[str, int]) -> dict[str, Any]:
    """Progress task fields (rich types them as ``Any``)."""
    return dict(tally)
