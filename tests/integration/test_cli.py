"""The installed ``orders`` command against the running system, as a subprocess."""

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.integration import probes
from tests.integration.system import System

pytestmark = pytest.mark.integration


def orders(
    system: System, *args: str, ws: bool = False, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m orders_cli`` against the system; ``ws`` passes --ws-url."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERS_")}
    env["COLUMNS"] = "200"
    urls = ["--api-url", system.base_url] + (["--ws-url", system.ws_url] if ws else [])
    return subprocess.run(  # noqa: S603 - our own module
        [sys.executable, "-m", "orders_cli", *args, *urls],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def submitted(system: System, amount: str = "3") -> str:
    """A confirmed order's id, submitted and followed by the CLI."""
    run = orders(system, "submit", "--amount", amount, "--json")
    assert run.returncode == 0, run.stderr
    return str(json_lines(run.stdout)[-1]["orderId"])


def test_submit_json_streams_the_lifecycle_to_confirmed(system: System) -> None:
    """submit --json prints one frame per status, ending confirmed with txHash."""
    run = orders(system, "submit", "--pair", "SOL-USDC", "--amount", "10", "--json")

    assert run.returncode == 0, run.stderr
    frames = json_lines(run.stdout)
    assert [f["status"] for f in frames] == probes.HAPPY_PATH
    assert [f["version"] for f in frames] == [1, 2, 3, 4, 5]
    assert len({f["orderId"] for f in frames}) == 1
    assert frames[-1]["txHash"]
    assert float(frames[-1]["finalPrice"]) > 0
    assert frames[-1]["venue"]


def test_submit_prints_a_timeline_then_the_outcome(system: System) -> None:
    """Without --json (and not a terminal) each status is a line with +time."""
    run = orders(
        system,
        "submit",
        "--amount",
        "2",
        "--side",
        "buy",
        "--slippage-bps",
        "80",
        ws=True,
    )

    assert run.returncode == 0, run.stderr
    for status in probes.HAPPY_PATH:
        assert status in run.stdout
    assert "+0.000s" in run.stdout
    assert "buy 2 SOL-USDC, slippage 80 bps" in run.stdout
    last = run.stdout.strip().splitlines()[-1]
    assert " confirmed +" in last
    assert "txHash " in last
    assert "finalPrice" in last


def test_submit_without_following_returns_the_receipt(system: System) -> None:
    """--no-follow --json prints the 202 receipt and exits 0 at once."""
    run = orders(system, "submit", "--amount", "1", "--no-follow", "--json", timeout=20)

    assert run.returncode == 0, run.stderr
    receipt = json.loads(run.stdout)
    assert receipt["status"] == "pending"
    assert receipt["links"]["ws"].endswith(f"/ws/orders/{receipt['orderId']}")


def test_a_repeated_client_order_id_follows_the_same_order(system: System) -> None:
    """--client-order-id twice: the second submit follows the first order."""
    key = f"cli-{time.time_ns()}"

    first = orders(
        system, "submit", "--amount", "1", "--client-order-id", key, "--json"
    )
    again = orders(
        system, "submit", "--amount", "1", "--client-order-id", key, "--json"
    )

    assert first.returncode == again.returncode == 0, first.stderr + again.stderr
    ids = {f["orderId"] for f in json_lines(first.stdout + again.stdout)}
    assert len(ids) == 1
    assert [f["status"] for f in json_lines(again.stdout)] == probes.HAPPY_PATH


@pytest.mark.parametrize(
    ("amount", "phrase"),
    [("-1", "greater than 0"), ("ten", "decimal"), ("0.0000000001", "decimal places")],
)
def test_a_bad_amount_exits_2_and_names_the_field(
    system: System, amount: str, phrase: str
) -> None:
    """The API's 422 is printed naming ``amount``; exit code 2, nothing on stdout."""
    run = orders(system, "submit", "--amount", amount, timeout=20)

    assert run.returncode == 2
    assert run.stdout == ""
    assert "422" in run.stderr
    assert "amount:" in run.stderr
    assert phrase in run.stderr


def test_a_bad_pair_with_json_reports_the_detail_as_json(system: System) -> None:
    """--json errors are one JSON document on stderr with the API's detail."""
    run = orders(system, "submit", "--pair", "DOGE-EUR", "--amount", "1", "--json")

    assert run.returncode == 2
    assert run.stdout == ""
    error = json.loads(run.stderr)
    assert error["status"] == 422
    assert error["detail"][0]["loc"] == ["body", "tokenPair"]
    assert "SOL-USDC" in error["error"]


def test_a_bad_option_is_a_usage_error_naming_it(system: System) -> None:
    """typer's own usage errors exit 2 too, naming the option, before any request."""
    run = orders(system, "submit", "--side", "sideways", timeout=20)

    assert run.returncode == 2
    assert "Usage:" in run.stderr
    assert "Invalid value for '--side'" in run.stderr
    assert "sideways" in run.stderr


def test_list_show_and_history_return_the_order(system: System) -> None:
    """list, show and history --json each return the submitted order."""
    order_id = submitted(system)

    deadline = time.monotonic() + 15
    while True:  # the list is a read model: it catches up within moments
        run = orders(system, "list", "--status", "confirmed", "--limit", "50", "--json")
        assert run.returncode == 0, run.stderr
        listed = json.loads(run.stdout)
        mine = [o for o in listed["orders"] if o["orderId"] == order_id]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert mine, f"{order_id} not listed"
    assert mine[0]["txHash"]
    assert all(o["status"] == "confirmed" for o in listed["orders"])

    shown = orders(system, "show", order_id, "--json")
    assert shown.returncode == 0, shown.stderr
    order = json.loads(shown.stdout)
    assert order["orderId"] == order_id
    assert order["status"] == "confirmed"
    assert {q["venue"] for q in order["quotes"]} == {"raydium", "meteora"}
    assert order["routePlan"]["reason"]
    assert float(order["amountIn"]) == 3

    history = orders(system, "history", order_id, "--json")
    assert history.returncode == 0, history.stderr
    events = json.loads(history.stdout)["events"]
    assert [e["type"] for e in events] == [
        "OrderAccepted",
        "RoutingStarted",
        "RouteSelected",
        "TransactionSubmitted",
        "SwapConfirmed",
    ]
    assert {e["orderId"] for e in events} == {order_id}


def test_show_and_history_render_tables(system: System) -> None:
    """The human views of show, history and list name the order and its parts."""
    order_id = submitted(system)

    shown = orders(system, "show", order_id)
    history = orders(system, "history", order_id)
    listed = orders(system, "list", "--limit", "5")

    assert shown.returncode == history.returncode == listed.returncode == 0
    for word in (order_id, "quotes", "route plan", "raydium", "meteora", "txHash"):
        assert word in shown.stdout
    for word in ("OrderAccepted", "SwapConfirmed", "since submit"):
        assert word in history.stdout
    assert "as of position" in listed.stdout


def test_an_unknown_order_exits_2(system: System) -> None:
    """show of an order that does not exist prints the 404 and exits 2."""
    run = orders(system, "show", "00000000-0000-4000-8000-000000000000", timeout=20)

    assert run.returncode == 2
    assert "404" in run.stderr
    assert "not found" in run.stderr


def test_watch_replays_the_firehose_from_a_position(system: System) -> None:
    """watch --after 0 --limit 5 --json prints five frames in position order."""
    submitted(system)

    run = orders(system, "watch", "--after", "0", "--limit", "5", "--json", ws=True)

    assert run.returncode == 0, run.stderr
    frames = json_lines(run.stdout)
    assert [f["position"] for f in frames] == [1, 2, 3, 4, 5]
    assert all(
        {"orderId", "status", "type", "version", "at"} <= f.keys() for f in frames
    )


def test_watch_piped_into_a_reader_that_leaves_stops_quietly(system: System) -> None:
    """`orders watch --json | head -1`: when head exits, watch ends with 0 and no
    traceback, as a Unix filter does."""
    submitted(system)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERS_")}
    watch = subprocess.Popen(  # noqa: S603 - our own module
        [sys.executable, "-m", "orders_cli", "watch", "--after", "0", "--json",
         "--api-url", system.base_url, "--ws-url", system.ws_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip
    assert watch.stdout is not None
    assert watch.stderr is not None
    first = json.loads(watch.stdout.readline())
    watch.stdout.close()  # the reader leaves
    submitted(system)  # and watch has frames to write after it has gone
    try:
        code = watch.wait(timeout=30)
    finally:
        watch.kill()
    assert first["position"] == 1
    stderr = watch.stderr.read()
    assert code == 0, stderr
    assert "Traceback" not in stderr


def test_watch_from_beyond_the_head_prints_the_refusal_and_exits_2(
    system: System,
) -> None:
    """The notifier refuses a cursor past the log's head (4400): watch says why."""
    run = orders(system, "watch", "--after", "999999999", ws=True)

    assert run.returncode == 2, run.stderr
    assert "beyond the head" in run.stderr
    assert "Traceback" not in run.stderr


def test_load_reports_every_order_terminal(system: System) -> None:
    """load --count 10 --json follows ten orders to confirmed or failed."""
    run = orders(
        system, "load", "--count", "10", "--concurrency", "4", "--json", timeout=90
    )

    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["count"] == 10
    assert summary["terminal"] == summary["confirmed"] + summary["failed"] == 10
    assert summary["timedOut"] == summary["rejected"] == 0
    assert len(summary["orders"]) == 10
    assert {o["status"] for o in summary["orders"]} <= {"confirmed", "failed"}
    assert len({o["orderId"] for o in summary["orders"]}) == 10
    latency = summary["latencyMs"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert summary["ordersPerSecond"] > 0


def test_load_waits_for_capacity_instead_of_giving_up(
    admission_system: System,
) -> None:
    """With room for two orders in flight, six at once get 503s with Retry-After:
    load waits them out and submits again, so every order ends and none is refused."""
    run = orders(
        admission_system,
        "load",
        "--count",
        "6",
        "--concurrency",
        "6",
        "--json",
        timeout=120,
    )

    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["terminal"] == summary["confirmed"] + summary["failed"] == 6
    assert summary["rejected"] == summary["timedOut"] == 0
    assert summary["waitedForCapacity"] >= 1
    assert len({o["orderId"] for o in summary["orders"]}) == 6


def test_load_prints_a_progress_bar_and_summary_table(system: System) -> None:
    """Without --json, load ends with the summary table and its percentiles."""
    run = orders(system, "load", "--count", "3", "--concurrency", "3", timeout=60)

    assert run.returncode == 0, run.stderr
    for word in ("load summary", "confirmed", "p50", "p95", "p99", "orders/s"):
        assert word in run.stdout


def test_load_with_a_bad_amount_exits_2(system: System) -> None:
    """Every submit refused with 422: load says why and exits 2."""
    run = orders(system, "load", "--count", "2", "--amount", "0", timeout=20)

    assert run.returncode == 2
    assert "amount:" in run.stderr
