"""The CLI's pure parts: percentiles, load summaries, error text and rich renderings."""

import statistics
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from rich.console import Console, RenderableType

from orders_cli.client import ApiError, field_error, retry_after_seconds
from orders_cli.load import (
    OrderOutcome,
    one_order,
    percentile,
    run_load,
    summarize,
)
from orders_cli.main import Side, _submitted, order_body
from orders_cli.render import (
    amount,
    elapsed,
    firehose_line,
    frame_detail,
    history_table,
    load_table,
    number,
    order_view,
    orders_table,
    outcome,
    short,
    since,
    timeline,
    timeline_line,
)

ORDER_ID = "0b6f2b5e-2c1d-4c1e-9f3a-7f1f2f3e4d5c"
TX = "5Ag4a1cn4uN44Nfh5eeQwZn99VwpV99AJzFhFu8cRSumhZgVDJYxZ8rXNDxh6cxgDa7hvwNgK2Ma"
PLAN = {
    "legs": [
        {"venue": "meteora", "bps": 6000, "inAmount": "6", "outAmount": "981.1"},
        {"venue": "raydium", "bps": 4000, "inAmount": "4", "outAmount": "654.2"},
    ],
    "inAmount": "10.000000000",
    "outAmount": "1635.300000",
    "minAmountOut": "1627.123",
    "maxAmountIn": "10",
    "gainBpsOverBestSingle": "3.5",
    "reason": "splitting 60/40 gives 3.5 bps more than meteora alone",
}


def frame(
    version: int, status: str, kind: str, at: str, **fields: Any
) -> dict[str, Any]:
    return {
        "orderId": ORDER_ID,
        "status": status,
        "type": kind,
        "version": version,
        "position": 100 + version,
        "at": f"2026-11-26T10:00:{at}Z",
        **fields,
    }


HAPPY = [
    frame(1, "pending", "OrderAccepted", "00.000", side="sell", amount="10",
          tokenPair="SOL-USDC", slippageBps=50, clientOrderId=None),
    frame(2, "routing", "RoutingStarted", "00.030", attempt=1),
    frame(3, "building", "RouteSelected", "00.250", attempt=1, plan=PLAN,
          venue="meteora+raydium"),
    frame(4, "submitted", "TransactionSubmitted", "00.280", signature=TX),
    frame(5, "confirmed", "SwapConfirmed", "02.750", txHash=TX, finalPrice="163.53",
          amountIn="10.000000000", amountOut="1635.300000", venue="meteora+raydium"),
]  # fmt: skip
RETRY = frame(
    4,
    "routing",
    "RetryScheduled",
    "01.000",
    failedAttempt=1,
    failure="slippage_exceeded",
    reason="pool moved past minAmountOut",
    delayMs=480,
)
FAILED = frame(
    9, "failed", "OrderFailed", "05.500", failure="no_liquidity", reason="pool empty"
)


def text(renderable: RenderableType, width: int = 200) -> str:
    console = Console(width=width, color_system=None)
    with console.capture() as captured:
        console.print(renderable)
    return captured.get()


@pytest.mark.parametrize("q", [0, 10, 50, 90, 95, 99, 100])
def test_percentile_interpolates_like_the_inclusive_method(q: int) -> None:
    """Linear interpolation between ranks, as numpy's default and statistics do."""
    values = [0.9, 3.1, 0.2, 5.0, 2.2, 1.7, 4.4, 0.5, 2.9, 3.8, 1.1]
    cuts = [min(values), *statistics.quantiles(values, n=100, method="inclusive")]
    cuts.append(max(values))

    assert percentile(values, q) == pytest.approx(cuts[q])


def test_percentile_of_nothing_is_none_and_of_one_value_is_that_value() -> None:
    """Edge cases: no samples, one sample, an out-of-range percentile."""
    assert percentile([], 50) is None
    assert percentile([2.5], 99) == 2.5
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1.0], 101)


def test_percentile_p50_of_an_even_count_is_the_midpoint() -> None:
    """p50 of 1..4 is 2.5 and p99 sits just below the maximum."""
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([4.0, 1.0, 3.0, 2.0], 99) == pytest.approx(3.97)


def test_summary_counts_outcomes_and_ranks_failure_reasons() -> None:
    """Counts per outcome, latency of confirmed orders only, reasons by frequency."""
    outcomes = [
        *(OrderOutcome(f"c{i}", "confirmed", latency=1.0 + i / 10) for i in range(7)),
        OrderOutcome("f1", "failed", 4.0, reason="slippage_exceeded: moved"),
        OrderOutcome("f2", "failed", 5.0, reason="slippage_exceeded: moved"),
        OrderOutcome("f3", "failed", 6.0, reason="no_liquidity: empty"),
        OrderOutcome("t1", "timed-out", reason="still submitted after 30s"),
        OrderOutcome(None, "rejected", reason="amount: too small", http_status=422),
    ]

    summary = summarize(outcomes, elapsed=5.0, concurrency=4)

    assert (summary.count, summary.confirmed, summary.failed) == (12, 7, 3)
    assert (summary.timed_out, summary.rejected, summary.terminal) == (1, 1, 10)
    assert summary.orders_per_second == pytest.approx(2.0)
    assert summary.latency["p50"] == pytest.approx(1.3)
    assert summary.latency["max"] == pytest.approx(1.6)
    assert next(iter(summary.failure_reasons.items())) == (
        "failed: slippage_exceeded: moved",
        2,
    )
    assert summary.failure_reasons["rejected: amount: too small"] == 1


def test_summary_json_is_machine_readable() -> None:
    """as_json gives camelCase counts, latencies in ms and one entry per order."""
    summary = summarize(
        [OrderOutcome("a", "confirmed", 0.5), OrderOutcome("b", "confirmed", 1.5)],
        elapsed=2.0,
        concurrency=2,
    )

    document = summary.as_json()

    assert document["terminal"] == 2
    assert document["ordersPerSecond"] == 1.0
    assert document["latencyMs"]["p50"] == 1000.0
    assert document["latencyMs"]["min"] == 500.0
    assert [o["orderId"] for o in document["orders"]] == ["a", "b"]
    assert document["failureReasons"] == {}


def test_a_summary_without_confirmed_orders_has_no_latency() -> None:
    """With nothing confirmed every latency statistic is None, not a crash."""
    summary = summarize(
        [OrderOutcome("a", "failed", 1.0, reason="x")], elapsed=0.0, concurrency=1
    )

    assert set(summary.latency.values()) == {None}
    assert summary.orders_per_second == 0.0
    assert "-" in text(load_table(summary))


def test_the_load_table_shows_counts_percentiles_and_reasons() -> None:
    """The human summary names every count, p50/p95/p99 and each failure reason."""
    summary = summarize(
        [
            OrderOutcome("a", "confirmed", 1.234),
            OrderOutcome("b", "failed", 2.0, reason="no_liquidity: empty"),
        ],
        elapsed=2.0,
        concurrency=2,
    )

    shown = text(load_table(summary))

    for word in ("confirmed", "failed", "timed-out", "p50", "p95", "p99", "orders/s"):
        assert word in shown
    assert "1,234 ms" in shown
    assert "failed: no_liquidity: empty" in shown


def test_field_errors_name_the_field_without_the_body_prefix() -> None:
    """FastAPI's loc ["body", "amount"] reads as ``amount: <msg>``."""
    assert (
        field_error({"loc": ["body", "amount"], "msg": "Input should be > 0"})
        == "amount: Input should be > 0"
    )
    assert field_error({"loc": ["header", "Idempotency-Key"], "msg": "m"}) == (
        "header.Idempotency-Key: m"
    )
    assert field_error("plain") == "plain"


def test_an_api_error_serialises_for_json_output() -> None:
    """--json errors carry the message, the HTTP status and the API's detail."""
    error = ApiError("amount: bad", status=422, detail=[{"loc": ["body", "amount"]}])

    assert error.as_json() == {
        "error": "amount: bad",
        "status": 422,
        "detail": [{"loc": ["body", "amount"]}],
    }


def test_the_order_body_sends_the_amount_as_typed() -> None:
    """The amount is passed through as a string for the API to validate."""
    body = order_body(
        pair="BONK-SOL",
        amount="1e3",
        side=Side.BUY,
        slippage_bps=None,
        client_order_id="abc",
    )

    assert body == {
        "amount": "1e3",
        "tokenPair": "BONK-SOL",
        "type": "market",
        "side": "buy",
        "clientOrderId": "abc",
    }


def test_small_formatters() -> None:
    """Elapsed times, shortened hashes and trimmed decimals."""
    assert elapsed(0.0312) == "+0.031s"
    assert elapsed(65.24) == "+1m05.2s"
    assert short(TX) == f"{TX[:8]}…{TX[-6:]}"
    assert short("abc") == "abc"
    assert short(None) == "-"
    assert number("1635.300000") == "1635.3"
    assert number("10.000000000") == "10"
    assert number("0.000402560", 9) == "0.00040256"
    assert number(None) == "-"
    assert number("0.000000131071234") == "0.000000131071"
    assert number("-0.5") == "-0.5"
    assert number("n/a") == "n/a"
    assert since(HAPPY[-1]["at"], HAPPY[0]["at"]) == pytest.approx(2.75)


def test_amounts_show_every_digit_the_api_sent() -> None:
    """A token amount is never rounded: 1.123456789 SOL shows every lamport, and
    the largest amount the API accepts (30 digits) prints instead of crashing."""
    assert amount("1.123456789") == "1.123456789"
    assert amount("10.500000000") == "10.5"
    assert amount("1E+2") == "100"
    assert amount(None) == "-"
    assert amount("n/a") == "n/a"
    big = "1" + "0" * 29
    assert amount(big) == big
    assert number(big) == big
    order = {**HAPPY[0], "amount": "1.123456789"}
    assert frame_detail(order) == "sell 1.123456789 SOL-USDC, slippage 50 bps"


def test_the_timeline_names_a_users_own_client_order_id_only() -> None:
    """The key the CLI made up for a submit is noise in the timeline; the user's
    own is what they will look the order up by."""
    generated = {
        **HAPPY[0],
        "clientOrderId": "cli-6b1f0c1e-8a55-4f39-9d0e-0c2b7f1d9a11",
    }
    own = {**HAPPY[0], "clientOrderId": "desk-42"}

    assert frame_detail(generated) == "sell 10 SOL-USDC, slippage 50 bps"
    assert frame_detail(own) == (
        "sell 10 SOL-USDC, slippage 50 bps, clientOrderId desk-42"
    )


def test_frame_details_say_what_each_event_adds() -> None:
    """Each event type has a one-line detail: plan, signature, result, reason."""
    assert frame_detail(HAPPY[0]) == "sell 10 SOL-USDC, slippage 50 bps"
    assert "splitting 60/40" in frame_detail(HAPPY[2])
    assert short(TX) in frame_detail(HAPPY[3])
    assert "finalPrice 163.53" in frame_detail(HAPPY[4])
    assert frame_detail(RETRY) == (
        "attempt 1 failed (slippage_exceeded): pool moved past minAmountOut;"
        " retry in 480 ms"
    )
    assert frame_detail(FAILED) == "no_liquidity: pool empty"
    assert frame_detail({"type": "SomethingNew"}) == ""


def test_the_timeline_shows_time_since_submit_venue_and_tx_hash() -> None:
    """Each status row carries +time from OrderAccepted, the venue and the result."""
    shown = text(timeline(HAPPY))

    for status in ("pending", "routing", "building", "submitted", "confirmed"):
        assert status in shown
    assert "+0.000s" in shown
    assert "+2.750s" in shown
    assert "meteora+raydium" in shown
    assert short(TX) in shown


def test_the_timeline_adds_a_waiting_row_while_in_flight() -> None:
    """An order still in flight shows how long it has been waiting."""
    shown = text(timeline(HAPPY[:3], waiting=1.5))

    assert "+1.500s" in shown
    assert "…" in shown


def test_timeline_lines_and_outcomes_for_piped_output() -> None:
    """Piped output is one line per status, then how the order ended."""
    assert "+2.750s" in text(timeline_line(HAPPY[-1], HAPPY[0]["at"]))
    ended = text(outcome(HAPPY))
    assert "confirmed +2.750s" in ended
    assert TX in ended
    failed = text(outcome([HAPPY[0], RETRY, FAILED]))
    assert "failed +5.500s" in failed
    assert "no_liquidity: pool empty" in failed
    assert text(outcome([])).strip() == "no events"


def test_the_order_view_shows_quotes_plan_attempts_and_amounts() -> None:
    """show's view: folded fields, both quotes, the split plan, failed attempts."""
    order = {
        "orderId": ORDER_ID,
        "status": "confirmed",
        "orderType": "market",
        "tokenPair": "SOL-USDC",
        "side": "sell",
        "amount": "10",
        "slippageBps": 50,
        "clientOrderId": None,
        "attempt": 2,
        "quotes": [
            {"venue": "meteora", "inAmount": "10", "outAmount": "1635.8",
             "minAmountOut": "1627.6", "maxAmountIn": "10", "fee": "0.004",
             "priceImpactPct": "0.0004", "slot": 27},
            {"venue": "raydium", "inAmount": "10", "outAmount": "1632.5",
             "minAmountOut": "1624.3", "maxAmountIn": "10", "fee": "0.025",
             "priceImpactPct": "0.00025", "slot": 27},
        ],
        "routePlan": PLAN,
        "txHash": TX,
        "finalPrice": "163.53",
        "amountIn": "10",
        "amountOut": "1635.3",
        "quotedAmountOut": "1635.3",
        "failures": [
            {"attempt": 1, "failure": "slippage_exceeded", "reason": "pool moved"}
        ],
        "failureReason": None,
        "version": 8,
        "createdAt": "2026-11-26T10:00:00Z",
        "updatedAt": "2026-11-26T10:00:05Z",
    }  # fmt: skip

    shown = text(order_view(order))

    assert ORDER_ID in shown
    assert TX in shown
    assert "0.0400%" in shown
    assert "60.00%" in shown
    assert "40.00%" in shown
    assert "splitting 60/40" in shown
    assert "slippage_exceeded" in shown
    assert "pool moved" in shown
    assert "1635.3" in shown


def test_the_order_list_and_history_tables() -> None:
    """list shows each order with status and failure; history every event."""
    listed = {
        "orders": [
            {"orderId": ORDER_ID, "status": "failed", "tokenPair": "SOL-USDC",
             "side": "sell", "amount": "10", "venue": None, "finalPrice": None,
             "txHash": None, "attempts": 3, "failureReason": "pool empty",
             "createdAt": "2026-11-26T10:00:00Z"},
        ],
        "asOfPosition": 42,
    }  # fmt: skip

    shown = text(orders_table(listed))
    assert ORDER_ID in shown
    assert "as of position 42" in shown
    assert "pool empty" in shown
    assert "--before" not in shown  # the last page

    more = text(orders_table({**listed, "nextCursor": "MjAy"}))
    assert "more: the same command with --before MjAy" in more

    events = text(history_table([*HAPPY[:3], RETRY]))
    assert "RetryScheduled" in events
    assert "+1.000s" in events


def test_a_firehose_line_names_position_order_status_and_event() -> None:
    """watch prints one line per frame."""
    shown = text(firehose_line(HAPPY[-1]))

    assert "#105" in shown
    assert ORDER_ID[:8] in shown
    assert "confirmed" in shown
    assert "SwapConfirmed" in shown
    assert "[meteora+raydium]" in shown


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "1", "Retry-After-Ms": "250"}, 0.25),
        ({"retry-after": "3"}, 3.0),
        ({"Retry-After": "2", "Retry-After-Ms": "soon"}, 2.0),
        ({}, None),
    ],
    ids=["milliseconds first", "whole seconds", "unreadable ms", "neither"],
)
def test_the_wait_a_503_asks_for(
    headers: dict[str, str], seconds: float | None
) -> None:
    assert retry_after_seconds(httpx.Headers(headers)) == seconds


class _BusyEngine:
    """Answers 503 with Retry-After ``busy`` times, then accepts the order."""

    def __init__(self, busy: int, *, retry_after: float = 0.01) -> None:
        self.busy = busy
        self.retry_after = retry_after
        self.submits = 0

    async def submit(self, body: Any) -> dict[str, Any]:
        self.submits += 1
        if self.submits <= self.busy:
            raise ApiError(
                "engine at capacity: 2 orders in flight, limit 2",
                status=503,
                retry_after=self.retry_after,
            )
        return {"orderId": "o1", "status": "pending"}

    async def follow(self, order_id: str) -> AsyncIterator[dict[str, Any]]:
        for status in ("pending", "confirmed"):
            yield {"orderId": order_id, "status": status}


async def test_load_waits_out_a_busy_engine_and_submits_again() -> None:
    """503 + Retry-After records nothing: the order is sent again, then followed."""
    engine = _BusyEngine(busy=3)

    outcome = await one_order(engine, {"amount": 1}, give_up_after=5)  # type: ignore[arg-type]

    assert engine.submits == 4
    assert outcome.status == "confirmed"
    assert outcome.waited_for_capacity == 3
    assert summarize([outcome], elapsed=1, concurrency=1).waited_for_capacity == 1


async def test_load_gives_up_on_a_busy_engine_at_its_deadline() -> None:
    engine = _BusyEngine(busy=1_000, retry_after=0.2)

    outcome = await one_order(engine, {"amount": 1}, give_up_after=0.5)  # type: ignore[arg-type]

    assert outcome.status == "rejected"
    assert outcome.http_status == 503
    assert outcome.reason is not None
    assert "capacity" in outcome.reason
    assert 1 <= engine.submits <= 3


class _StoreBlip:
    """Each order's first submit meets a store outage (503 + Retry-After), which
    may have struck after the order was recorded; the second is answered."""

    def __init__(self) -> None:
        self.submitted: list[dict[str, Any]] = []

    async def ws_url(self) -> str:
        return "ws://notifier"

    async def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        self.submitted.append(dict(body))
        key = body.get("clientOrderId")
        if sum(1 for b in self.submitted if b.get("clientOrderId") == key) == 1:
            raise ApiError("order store unavailable", status=503, retry_after=0)
        return {"orderId": f"order-of-{key}", "status": "pending"}

    async def follow(self, order_id: str) -> AsyncIterator[dict[str, Any]]:
        yield {"orderId": order_id, "status": "confirmed"}


async def test_load_resubmits_the_same_order_never_a_second_one() -> None:
    """Every load order carries its own clientOrderId, so a resubmit after a 503
    returns the order the outage may already have recorded."""
    client = _StoreBlip()

    summary = await run_load(
        client,  # type: ignore[arg-type]
        lambda _i: {"amount": "1", "tokenPair": "SOL-USDC", "type": "market"},
        count=3,
        concurrency=3,
        give_up_after=5,
    )

    keys = [body["clientOrderId"] for body in client.submitted]
    assert len(keys) == 6
    assert len(set(keys)) == 3  # each order's key sent twice, never a new one
    assert summary.confirmed == 3
    assert len({o.order_id for o in summary.outcomes}) == 3


class _LostAnswer:
    """The first submit's answer never arrives (the gateway may have recorded the
    order); the second is answered."""

    def __init__(self) -> None:
        self.submitted: list[dict[str, Any]] = []

    async def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        self.submitted.append(dict(body))
        if len(self.submitted) == 1:
            raise ApiError("no answer from the API", unanswered=True)
        return {"orderId": "o1", "status": "pending"}

    async def follow(self, order_id: str) -> AsyncIterator[dict[str, Any]]:
        yield {"orderId": order_id, "status": "confirmed"}


async def test_load_asks_again_for_an_order_whose_answer_was_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lost answer is not a refusal: the same order is asked for again."""
    monkeypatch.setattr("orders_cli.client._FIRST_PAUSE_S", 0.001)
    client = _LostAnswer()

    outcome = await one_order(
        client,  # type: ignore[arg-type]
        {"clientOrderId": "load-x-0", "amount": "1"},
        give_up_after=5,
    )

    assert outcome.status == "confirmed"
    assert [b["clientOrderId"] for b in client.submitted] == ["load-x-0"] * 2
    assert outcome.waited_for_capacity == 0


class _Silent:
    async def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        raise ApiError("no answer from the API at http://api.test", unanswered=True)


async def test_a_submit_whose_answer_was_lost_names_the_key_to_ask_again_with() -> None:
    """The order may be recorded: the error says how to get it back, not a second."""
    with pytest.raises(ApiError) as lost:
        await _submitted(_Silent(), {"clientOrderId": "cli-1"}, "cli-1")  # type: ignore[arg-type]

    assert "--client-order-id cli-1" in lost.value.message
    assert "may have been recorded" in lost.value.message
    assert lost.value.as_json()["detail"] == {"clientOrderId": "cli-1"}
