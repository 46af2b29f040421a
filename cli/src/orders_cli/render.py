"""Rich renderings of orders, frames and load summaries: data in, renderable out."""

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from orders_cli.client import GENERATED_KEY_PREFIX
from orders_cli.load import LoadSummary

STATUS_STYLE = {
    "pending": "cyan",
    "routing": "blue",
    "building": "magenta",
    "submitted": "yellow",
    "confirmed": "bold green",
    "failed": "bold red",
    "timed-out": "bold yellow",
    "rejected": "bold red",
}


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def parse_at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def since(at: str, start: str) -> float:
    """Seconds from ``start`` to ``at`` (both ISO 8601 timestamps from frames)."""
    return (parse_at(at) - parse_at(start)).total_seconds()


def elapsed(seconds: float) -> str:
    """``+0.031s``, ``+2.480s``, ``+1m05.2s``: time since submit, fixed width-ish."""
    if seconds < 60:  # noqa: PLR2004 - one minute
        return f"+{seconds:.3f}s"
    minutes, rest = divmod(seconds, 60)
    return f"+{int(minutes)}m{rest:04.1f}s"


def short(value: str | None, keep: int = 8) -> str:
    """The head and tail of a long hash: ``5Ag4a1cn…eM2z9Z``."""
    if not value:
        return "-"
    if len(value) <= 2 * keep + 1:
        return value
    return f"{value[:keep]}…{value[-6:]}"


def number(value: object, places: int = 6) -> str:
    """A decimal string without trailing zeros: ``163.582456``, ``0.000000131071``.

    At most ``places`` decimals, or ``places`` significant digits below 1, so a
    BONK price in SOL does not round to 0.
    """
    shown = _finite(value)
    if shown is None:
        return "-" if value is None else str(value)
    decimals = places
    if shown and abs(shown) < 1:
        decimals = max(places, places - shown.adjusted() - 1)
    with localcontext() as exact:
        # Room for every digit: the default 28 would refuse a 30-digit amount.
        exact.prec = max(28, shown.adjusted() + decimals + 2)
        text = f"{shown.quantize(Decimal(1).scaleb(-decimals)):f}"
    return _without_trailing_zeros(text)


def amount(value: object) -> str:
    """A token amount as exact as the API sends it, trailing zeros dropped:
    ``1.123456789`` SOL shows every lamport, where :func:`number` would round it."""
    exact = _finite(value)
    if exact is None:
        return "-" if value is None else str(value)
    return _without_trailing_zeros(f"{exact:f}")


def _finite(value: object) -> Decimal | None:
    """``value`` as a finite decimal; None for no value or something else."""
    if value is None:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _without_trailing_zeros(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def frame_detail(frame: Mapping[str, Any]) -> str:
    """One line saying what an event adds: plan, signature, result or reason."""
    match frame.get("type"):
        case "OrderAccepted":
            detail = (
                f"{frame.get('side')} {amount(frame.get('amount'))}"
                f" {frame.get('tokenPair')}, slippage {frame.get('slippageBps')} bps"
            )
            key = str(frame.get("clientOrderId") or "")
            if key and not key.startswith(GENERATED_KEY_PREFIX):  # the user's own
                detail += f", clientOrderId {key}"
            return detail
        case "RoutingStarted":
            return f"attempt {frame.get('attempt')}: quoting venues"
        case "RouteSelected":
            plan = frame.get("plan") or {}
            return (
                f"{plan.get('reason', '')}: in {amount(plan.get('inAmount'))}"
                f" → out {amount(plan.get('outAmount'))}"
            )
        case "TransactionSubmitted":
            return f"signature {short(frame.get('signature'))}"
        case "SwapConfirmed":
            return (
                f"finalPrice {number(frame.get('finalPrice'))}"
                f" · in {amount(frame.get('amountIn'))}"
                f" · out {amount(frame.get('amountOut'))}"
            )
        case "RetryScheduled":
            return (
                f"attempt {frame.get('failedAttempt')} failed"
                f" ({frame.get('failure')}): {frame.get('reason')};"
                f" retry in {frame.get('delayMs')} ms"
            )
        case "OrderFailed":
            return f"{frame.get('failure')}: {frame.get('reason')}"
        case _:
            return ""


def tx_hash(frame: Mapping[str, Any]) -> str | None:
    value = frame.get("txHash") or frame.get("signature")
    return str(value) if value else None


def timeline(
    frames: Sequence[Mapping[str, Any]], *, waiting: float | None = None
) -> Table:
    """The order's statuses so far, each with its time since submit.

    Times come from the frames' ``at`` (when the store recorded the event) relative
    to the first frame (``OrderAccepted``, recorded by the submit), so a replayed
    history shows the same times as a live one. ``waiting`` adds a last row while
    the order is still in flight.
    """
    table = Table(box=None, pad_edge=False, show_header=True, header_style="dim")
    table.add_column("since submit", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("venue", no_wrap=True)
    table.add_column("detail", overflow="fold")
    start = frames[0]["at"] if frames else None
    for frame in frames:
        table.add_row(
            elapsed(since(frame["at"], start)) if start else "",
            status_text(str(frame["status"])),
            str(frame.get("venue") or ""),
            timeline_detail(frame),
        )
    if waiting is not None:
        table.add_row(elapsed(waiting), Text("…", style="dim"), "", "")
    return table


def timeline_detail(frame: Mapping[str, Any]) -> str:
    """The event's detail, with the transaction it names."""
    detail = frame_detail(frame)
    if frame.get("type") == "SwapConfirmed":
        detail += f" · txHash {short(tx_hash(frame))}"
    return detail


def timeline_line(frame: Mapping[str, Any], start: str) -> Text:
    """One timeline row as a line, for output that is not a terminal."""
    venue = str(frame.get("venue") or "")
    return Text.assemble(
        f"{elapsed(since(frame['at'], start)):>10}  ",
        status_text(f"{frame['status']!s:<10}"),
        f"{venue:<16}",
        timeline_detail(frame),
    )


def outcome(frames: Sequence[Mapping[str, Any]]) -> Text:
    """The closing line: how the order ended and how long it took."""
    if not frames:
        return Text("no events", style="dim")
    last = frames[-1]
    took = elapsed(since(last["at"], frames[0]["at"]))
    status = str(last["status"])
    line = Text.assemble(
        ("order ", "dim"), str(last["orderId"]), " ", status_text(status), f" {took}"
    )
    if status == "confirmed":
        line.append(
            f" · {last.get('venue')}"
            f" · finalPrice {number(last.get('finalPrice'))}"
            f" · amountOut {amount(last.get('amountOut'))}"
            f" · txHash {last.get('txHash')}"
        )
    elif status == "failed":
        line.append(f" · {last.get('failure')}: {last.get('reason')}")
    return line


def orders_table(listed: Mapping[str, Any]) -> Table:
    """``GET /api/orders`` as a table, newest first."""
    table = Table(
        title=f"orders (as of position {listed.get('asOfPosition')})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    orders = list(listed.get("orders", ()))
    table.add_column("orderId", no_wrap=True, min_width=36)
    table.add_column("status", no_wrap=True)
    table.add_column("order")
    table.add_column("venue")
    table.add_column("finalPrice", justify="right")
    table.add_column("txHash")
    table.add_column("att", justify="right")
    table.add_column("created")
    failures = any(order.get("failureReason") for order in orders)
    if failures:
        table.add_column("failure")
    for order in orders:
        row: list[RenderableType] = [
            str(order["orderId"]),
            status_text(str(order["status"])),
            (
                f"{order.get('side')} {amount(order.get('amount'))}"
                f" {order.get('tokenPair')}"
            ),
            str(order.get("venue") or "-"),
            number(order.get("finalPrice")),
            short(order.get("txHash"), 6),
            str(order.get("attempts")),
            _clock(order.get("createdAt"))[:8],
        ]
        if failures:
            row.append(str(order.get("failureReason") or ""))
        table.add_row(*row)
    if cursor := listed.get("nextCursor"):
        table.caption = f"more: the same command with --before {cursor}"
        table.caption_justify = "left"
    return table


def _clock(value: object) -> str:
    if not value:
        return "-"
    return parse_at(str(value)).strftime("%H:%M:%S.%f")[:-3]


def _fields(rows: Iterable[tuple[str, Any]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()
    for name, value in rows:
        grid.add_row(name, value if isinstance(value, Text) else str(value))
    return grid


def order_view(order: Mapping[str, Any]) -> Group:
    """``GET /api/orders/{id}``: the folded order, its quotes, plan and attempts."""
    parts: list[RenderableType] = [
        Panel(
            _fields(
                [
                    ("orderId", order["orderId"]),
                    ("status", status_text(str(order["status"]))),
                    (
                        "order",
                        (
                            f"{order.get('orderType')} {order.get('side')}"
                            f" {amount(order.get('amount'))} {order.get('tokenPair')}"
                        ),
                    ),
                    ("slippage", f"{order.get('slippageBps')} bps"),
                    ("clientOrderId", order.get("clientOrderId") or "-"),
                    ("attempt", order.get("attempt")),
                    ("txHash", order.get("txHash") or "-"),
                    ("finalPrice", number(order.get("finalPrice"))),
                    ("amountIn", amount(order.get("amountIn"))),
                    ("amountOut", amount(order.get("amountOut"))),
                    ("quotedAmountOut", amount(order.get("quotedAmountOut"))),
                    ("failureReason", order.get("failureReason") or "-"),
                    ("created", order.get("createdAt")),
                    ("updated", order.get("updatedAt")),
                    ("version", order.get("version")),
                ]
            ),
            title="order",
            title_align="left",
        )
    ]
    quotes = order.get("quotes") or ()
    if quotes:
        table = Table(title="quotes (latest routing)", title_justify="left")
        for column in ("venue", "in", "out", "minOut", "maxIn", "fee", "impact"):
            table.add_column(column, justify="left" if column == "venue" else "right")
        table.add_column("slot", justify="right")
        for q in quotes:
            table.add_row(
                str(q["venue"]),
                amount(q.get("inAmount")),
                amount(q.get("outAmount")),
                amount(q.get("minAmountOut")),
                amount(q.get("maxAmountIn")),
                number(q.get("fee")),
                f"{Decimal(str(q.get('priceImpactPct', 0))) * 100:.4f}%",
                str(q.get("slot")),
            )
        parts.append(table)
    plan = order.get("routePlan")
    if plan:
        table = Table(title="route plan", title_justify="left")
        for column in ("venue", "share", "in", "out"):
            table.add_column(column, justify="left" if column == "venue" else "right")
        for leg in plan.get("legs", ()):
            table.add_row(
                str(leg["venue"]),
                f"{int(leg['bps']) / 100:.2f}%",
                amount(leg.get("inAmount")),
                amount(leg.get("outAmount")),
            )
        parts.append(table)
        parts.append(
            _fields(
                [
                    ("reason", plan.get("reason")),
                    (
                        "gain vs best single venue",
                        f"{number(plan.get('gainBpsOverBestSingle'), 2)} bps",
                    ),
                    ("minAmountOut", amount(plan.get("minAmountOut"))),
                    ("maxAmountIn", amount(plan.get("maxAmountIn"))),
                ]
            )
        )
    failures = order.get("failures") or ()
    table = Table(title="failed attempts", title_justify="left")
    for column in ("attempt", "failure", "reason"):
        table.add_column(column)
    for failure in failures:
        table.add_row(
            str(failure["attempt"]), str(failure["failure"]), str(failure["reason"])
        )
    parts.append(table if failures else Text("no failed attempts", style="dim"))
    return Group(*parts)


def history_table(events: Sequence[Mapping[str, Any]]) -> Table:
    """``GET /api/orders/{id}/events``: every event, in version order."""
    table = Table(title="history", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("ver", justify="right")
    table.add_column("pos", justify="right")
    table.add_column("at", no_wrap=True)
    table.add_column("since submit", justify="right", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("venue", no_wrap=True)
    table.add_column("detail")
    start = events[0]["at"] if events else ""
    for event in events:
        table.add_row(
            str(event["version"]),
            str(event["position"]),
            _clock(event["at"]),
            elapsed(since(event["at"], start)),
            str(event["type"]),
            status_text(str(event["status"])),
            str(event.get("venue") or ""),
            frame_detail(event),
        )
    return table


def firehose_line(frame: Mapping[str, Any]) -> Text:
    """One firehose frame as one line: time, position, order, status, event, detail."""
    return Text.assemble(
        (_clock(frame.get("at")), "dim"),
        " ",
        (f"#{frame.get('position')}", "dim"),
        " ",
        str(frame.get("orderId", ""))[:8],
        " ",
        status_text(f"{frame.get('status', '')!s:<9}"),
        " ",
        (f"{frame.get('type', '')!s:<20}", "bold"),
        " ",
        frame_detail(frame),
        (f" [{frame['venue']}]" if frame.get("venue") else ""),
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.0f} ms"


def load_table(summary: LoadSummary) -> Group:
    """The load run's outcome: counts, throughput, latency and failure reasons."""
    counts = Table(title="load summary", title_justify="left")
    counts.add_column("metric")
    counts.add_column("value", justify="right")
    counts.add_row("orders", str(summary.count))
    counts.add_row("concurrency", str(summary.concurrency))
    counts.add_row(status_text("confirmed"), str(summary.confirmed))
    counts.add_row(status_text("failed"), str(summary.failed))
    counts.add_row(status_text("timed-out"), str(summary.timed_out))
    counts.add_row(status_text("rejected"), str(summary.rejected))
    counts.add_row("waited for capacity (503)", str(summary.waited_for_capacity))
    counts.add_row("elapsed", f"{summary.elapsed:.2f} s")
    counts.add_row("orders/s (terminal)", f"{summary.orders_per_second:.2f}")
    latency = summary.latency
    for name in ("p50", "p95", "p99", "max"):
        counts.add_row(f"submit→confirmed {name}", _ms(latency.get(name)))
    parts: list[RenderableType] = [counts]
    if summary.failure_reasons:
        reasons = Table(title="failure reasons", title_justify="left")
        reasons.add_column("count", justify="right")
        reasons.add_column("reason")
        for reason, count in summary.failure_reasons.items():
            reasons.add_row(str(count), reason)
        parts.append(reasons)
    return Group(*parts)
