"""The dashboard in a real headless browser (Debian's chromium, driven by Playwright).

The page is served by the gateway of a running system and talks to the gateway API
and the notifier firehose, as it does for a user. Playwright never downloads a
browser here: it drives ``/usr/bin/chromium`` (``apt-get install chromium``).
"""

import asyncio
import itertools
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Error as PlaywrightError,
    Page,
    Request,
    Route,
    WebSocket,
    WebSocketRoute,
    async_playwright,
    expect,
)

from tests.integration import probes
from tests.integration.system import OUTPUT, System

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
CLOCK = re.compile(r"^\d{2}:\d{2}:\d{2}\.\d{3}$")
# Bounded waits (ms): an order confirms in well under a second with the test settings.
SHORT = 10_000
ORDER_DONE = 30_000


@dataclass
class Recorded:
    """What the page did besides rendering: console errors, page errors, traffic."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    websockets: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} @ {message.location}")

    def on_page_error(self, error: PlaywrightError) -> None:
        self.page_errors.append(str(error))

    def on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def on_websocket(self, websocket: WebSocket) -> None:
        self.websockets.append(websocket.url)

    def non_local(self) -> list[str]:
        """URLs of requests and WebSockets that left this machine."""
        return [
            url
            for url in self.requests + self.websockets
            if urlsplit(url).scheme not in {"data", "blob"}
            and urlsplit(url).hostname not in LOCAL_HOSTS
        ]

    def assert_clean(self) -> None:
        assert self.console_errors == [], self.console_errors
        assert self.page_errors == [], self.page_errors
        assert self.non_local() == [], self.non_local()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Debian's chromium, headless; a missing binary fails the run (never skips)."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} not found: the dashboard browser tests need Debian's chromium "
            "(apt-get install -y chromium); Playwright does not download browsers here"
        )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[tuple[Page, Recorded]]:
    """A fresh page (own context, desktop viewport) recording what it does."""
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(SHORT)
    recorded = Recorded()
    opened = await context.new_page()
    opened.on("console", recorded.on_console)
    opened.on("pageerror", recorded.on_page_error)
    opened.on("request", recorded.on_request)
    opened.on("websocket", recorded.on_websocket)
    try:
        yield opened, recorded
    finally:
        await context.close()


async def open_dashboard(page: Page, system: System) -> None:
    await page.goto(system.base_url + "/", wait_until="load")
    conn = page.get_by_test_id("conn-state")
    await expect(conn).to_have_attribute("data-state", "open", timeout=SHORT)
    await expect(conn).to_have_text("live")
    # The pair select is filled from GET /api/pairs, the table from GET /api/orders.
    await expect(page.locator("#pair option")).not_to_have_count(0)
    await expect(page.get_by_test_id("orders-count")).to_have_text(
        re.compile(r"^\d+ shown · \d+ tracked$")
    )


async def test_burst_submits_orders_that_all_confirm(
    page: tuple[Page, Recorded], system: System
) -> None:
    """The burst button submits N orders and the KPIs count them all confirmed."""
    tab, recorded = page
    await open_dashboard(tab, system)
    # They count what the page holds (the list's newest, then what it sees live),
    # and say so: no total of the system's.
    kpis = tab.get_by_role("group", name="Orders this page tracks")
    await expect(kpis.locator(".kpi-label")).to_have_text(
        ["tracked", "in flight", "confirmed", "failed"]
    )
    await expect(kpis).to_have_attribute("title", re.compile("not the system's totals"))
    confirmed_before = int(await tab.get_by_test_id("kpi-confirmed").inner_text())
    failed_before = await tab.get_by_test_id("kpi-failed").inner_text()

    await tab.locator("select#pair").select_option("SOL-USDC")
    await tab.get_by_test_id("amount").fill("1")
    await tab.get_by_test_id("burst-count").fill("12")
    await tab.get_by_test_id("burst").click()

    await expect(tab.get_by_test_id("burst-status")).to_have_text(
        re.compile(r"^12/12 accepted in "), timeout=ORDER_DONE
    )
    # Other tests share the system: count at least our 12, and no new failure.
    await tab.wait_for_function(
        "n => Number(document.getElementById('kpi-confirmed').textContent) >= n",
        arg=confirmed_before + 12,
        timeout=ORDER_DONE,
    )
    await expect(tab.get_by_test_id("kpi-failed")).to_have_text(failed_before)
    await expect(tab.get_by_test_id("latency-now")).to_have_text(re.compile("^p50 "))

    OUTPUT.mkdir(parents=True, exist_ok=True)
    await tab.screenshot(path=OUTPUT / "dashboard-burst.png", full_page=True)
    recorded.assert_clean()


async def test_order_submitted_from_the_form_confirms_with_full_timeline(
    page: tuple[Page, Recorded], system: System
) -> None:
    """An order from the form goes live to confirmed; its details list every step."""
    tab, recorded = page
    await open_dashboard(tab, system)

    await tab.locator("select#pair").select_option("SOL-USDT")
    await tab.get_by_test_id("amount").fill("2.5")
    # The radio sits under its segmented-control label: click what a user sees.
    side_buy = tab.get_by_test_id("side-buy")
    await tab.locator("label", has=side_buy).click()
    await expect(side_buy).to_be_checked()
    await expect(tab.get_by_test_id("side-hint")).to_have_text(
        "receive exactly 2.5 SOL, pay USDT"
    )
    await tab.get_by_test_id("submit").click()

    result = tab.get_by_test_id("form-result")
    await expect(result).to_have_text(re.compile(r"^accepted [0-9a-f-]{36}$"))
    order_id = await result.get_attribute("data-order-id")
    assert order_id is not None

    row = tab.locator(f'tr[data-order-id="{order_id}"]')
    await expect(row.get_by_test_id("status")).to_have_text(
        "confirmed", timeout=ORDER_DONE
    )
    await expect(row.get_by_test_id("row-pair")).to_have_text("SOL-USDT")
    await expect(row.locator("td").nth(3)).to_have_text("buy")

    await row.click()
    details = tab.get_by_test_id("details")
    await expect(details).to_be_visible()
    await expect(tab.get_by_test_id("details-id")).to_have_text(order_id)
    items = tab.get_by_test_id("timeline-item")
    await expect(items).to_have_count(len(probes.HAPPY_PATH))
    statuses = [await item.get_attribute("data-status") for item in await items.all()]
    assert statuses == probes.HAPPY_PATH
    times = await items.locator(".when").all_inner_texts()
    assert all(CLOCK.match(t) for t in times), times
    await expect(tab.get_by_test_id("timeline-total")).to_have_text(
        re.compile(r"^end-to-end: \d")
    )

    quotes = tab.get_by_test_id("quotes")
    for venue in ("raydium", "meteora"):
        cells = quotes.locator(f'tbody tr[data-venue="{venue}"] td')
        await expect(cells.first).to_have_text(venue)
        await expect(cells.nth(1)).to_have_text(re.compile(r"\d"))  # in
        await expect(cells.nth(2)).to_have_text(re.compile(r"\d"))  # out
    # The impact column is headed "impact %": the API's fraction times 100.
    async with httpx.AsyncClient(base_url=system.base_url, timeout=10) as client:
        detail = (await client.get(f"/api/orders/{order_id}")).raise_for_status()
    for quote in detail.json()["quotes"]:
        percent = Decimal(quote["priceImpactPct"]) * 100
        impact = quotes.locator(f'tbody tr[data-venue="{quote["venue"]}"] td').nth(4)
        await expect(impact).to_have_attribute("title", f"{percent.normalize():f}")
        assert Decimal(await impact.inner_text()) == pytest.approx(
            percent, rel=Decimal("0.001")
        )

    OUTPUT.mkdir(parents=True, exist_ok=True)
    await tab.screenshot(path=OUTPUT / "dashboard.png", full_page=True)
    recorded.assert_clean()
    # The recorder saw the traffic it vetted: the API over HTTP, the notifier over WS.
    assert any("/api/orders/execute" in url for url in recorded.requests)
    # The firehose starts where the list left off: its asOfPosition.
    assert re.fullmatch(
        re.escape(f"{system.ws_url}/ws/orders?after=") + r"\d+", recorded.websockets[0]
    ), recorded.websockets


async def _submit(system: System, pair: str) -> str:
    async with httpx.AsyncClient(base_url=system.base_url, timeout=10) as client:
        answer = await client.post(
            "/api/orders/execute",
            json={"amount": 1, "tokenPair": pair, "type": "market"},
        )
        answer.raise_for_status()
        return str(answer.json()["orderId"])


FIREHOSE = re.compile(r"/ws/orders(\?|$)")
ORDER_LIST = re.compile(r"/api/orders\?limit=100$")  # the seed, not the checks


async def test_an_order_that_runs_while_the_page_connects_shows_its_final_status(
    page: tuple[Page, Recorded], system: System
) -> None:
    """Events between the list the page seeded from and its live connection are kept."""
    tab, recorded = page
    placed: list[str] = []

    async def connect_late(ws: WebSocketRoute) -> None:
        # The order runs its whole course after the list was read and before the
        # firehose is connected.
        order_id = await _submit(system, "SOL-USDC")
        await probes.wait_all(system, [order_id], {"confirmed"}, timeout=30)
        placed.append(order_id)
        ws.connect_to_server()

    await tab.route_web_socket(FIREHOSE, connect_late)
    await open_dashboard(tab, system)
    row = tab.locator(f'tr[data-order-id="{placed[0]}"]')
    await expect(row.get_by_test_id("status")).to_have_text("confirmed")
    await expect(row.get_by_test_id("row-pair")).to_have_text("SOL-USDC")
    recorded.assert_clean()


async def test_an_order_first_seen_mid_stream_gets_its_pair_and_age(
    page: tuple[Page, Recorded], system: System
) -> None:
    """An order older than the seeded list, seen live, is filled from its history."""
    tab, recorded = page
    order_id = await _submit(system, "SOL-USDT")
    await probes.wait_all(system, [order_id], {"confirmed"}, timeout=30)
    async with httpx.AsyncClient(base_url=system.base_url, timeout=10) as client:
        events = (await client.get(f"/api/orders/{order_id}/events")).json()["events"]
    accepted_at = events[0]["position"]

    async def list_without_it(route: Route) -> None:
        # As if the order were older than the list's 100 newest: the page first
        # hears of it from the firehose, at its second event.
        await route.fulfill(
            json={"orders": [], "asOfPosition": accepted_at, "nextCursor": None}
        )

    await tab.route(ORDER_LIST, list_without_it)
    await open_dashboard(tab, system)
    row = tab.locator(f'tr[data-order-id="{order_id}"]')
    await expect(row.get_by_test_id("status")).to_have_text("confirmed")
    await expect(row.get_by_test_id("row-pair")).to_have_text("SOL-USDT")
    await expect(row.locator("td").nth(3)).to_have_text("sell")
    await expect(row.locator("td.age")).not_to_have_attribute("data-created", "")
    recorded.assert_clean()


async def test_a_refused_cursor_makes_the_page_start_over_from_the_list(
    page: tuple[Page, Recorded], system: System
) -> None:
    """A position beyond the notifier's log (a reset store) is not retried forever."""
    tab, recorded = page
    lists = 0

    async def first_list_from_another_store(route: Route) -> None:
        nonlocal lists
        lists += 1
        if lists > 1:
            await route.continue_()
            return
        await route.fulfill(
            json={"orders": [], "asOfPosition": 10**15, "nextCursor": None}
        )

    await tab.route(ORDER_LIST, first_list_from_another_store)
    await tab.goto(system.base_url + "/", wait_until="load")
    await tab.wait_for_function("() => (window.dashboard.lastPosition ?? 0) < 1e15")
    await expect(tab.get_by_test_id("conn-state")).to_have_attribute(
        "data-state", "open"
    )
    order_id = await _submit(system, "SOL-USDC")
    row = tab.locator(f'tr[data-order-id="{order_id}"]')
    await expect(row.get_by_test_id("status")).to_have_text(
        "confirmed", timeout=ORDER_DONE
    )
    assert lists == 2
    recorded.assert_clean()


async def test_a_firehose_gone_quiet_while_orders_move_is_dropped_and_resumed(
    page: tuple[Page, Recorded], system: System
) -> None:
    """The notifier's frames stop reaching the page (its host vanished, say: the
    browser sees no close) while orders go on. The page notices by the list's
    asOfPosition, drops the socket, resumes after its last position, and shows the
    order it missed."""
    tab, recorded = page
    dials = 0

    async def first_goes_quiet(ws: WebSocketRoute) -> None:
        nonlocal dials
        dials += 1
        server = ws.connect_to_server()
        if dials == 1:
            server.on_message(lambda _message: None)  # nothing reaches the page

    await tab.route_web_socket(FIREHOSE, first_goes_quiet)
    await tab.clock.install()  # time flows, and the test can move it on
    await open_dashboard(tab, system)
    seeded = await tab.evaluate("window.dashboard.lastPosition")
    order_id = await _submit(system, "SOL-USDC")
    await probes.wait_all(system, [order_id], {"confirmed"}, timeout=30)
    async with (
        httpx.AsyncClient(base_url=system.base_url, timeout=10) as client,
        asyncio.timeout(10),
    ):
        while (await client.get("/api/orders?limit=1")).json()[
            "asOfPosition"
        ] <= seeded:
            await asyncio.sleep(0.05)

    # The page checks every 15 s: the first check sees the socket quiet, the next
    # one that it stayed quiet while the log moved on. (One may have run already.)
    async with asyncio.timeout(20):
        for _ in range(3):
            await tab.clock.fast_forward(15_000)
            for _ in range(40):
                if dials == 2:
                    break
                await asyncio.sleep(0.05)
            if dials == 2:
                break

    row = tab.locator(f'tr[data-order-id="{order_id}"]')
    await expect(row.get_by_test_id("status")).to_have_text("confirmed")
    assert dials == 2
    recorded.assert_clean()


async def test_a_log_that_stays_ahead_of_the_firehose_costs_one_reconnect_not_a_loop(
    page: tuple[Page, Recorded], system: System
) -> None:
    """Positions the notifier passes over (event types this release cannot show)
    keep asOfPosition ahead of every frame. The page drops its quiet socket once
    for them, then stays connected until the log moves again."""
    tab, recorded = page
    dials = 0

    async def count(ws: WebSocketRoute) -> None:
        nonlocal dials
        dials += 1
        ws.connect_to_server()

    async def log_ahead(route: Route) -> None:
        # As if the last events were ones no frame will ever show.
        response = await route.fetch()
        body = await response.json()
        await route.fulfill(json={**body, "asOfPosition": body["asOfPosition"] + 3})

    await tab.route_web_socket(FIREHOSE, count)
    await tab.clock.install()
    await open_dashboard(tab, system)
    await tab.route(re.compile(r"/api/orders\?limit=1$"), log_ahead)

    for _ in range(6):  # a minute and a half of checks
        await tab.clock.fast_forward(15_000)
        await asyncio.sleep(0.2)
    await expect(tab.get_by_test_id("conn-state")).to_have_attribute(
        "data-state", "open"
    )

    assert dials == 2, f"{dials - 1} reconnects for one stretch of the log"
    recorded.assert_clean()


async def test_a_notifier_that_accepts_then_closes_1013_is_retried_ever_later(
    page: tuple[Page, Recorded], system: System
) -> None:
    """During a store outage the notifier accepts each connect, then closes it 1013.
    An open socket is no working connection: the page backs off further each time
    (not twice a second) and shows the notifier's reason."""
    tab, recorded = page
    reason = "the event store is unavailable; resume with ?after=0"
    dialed_at: list[int] = []
    closing: set[asyncio.Task[None]] = set()

    async def close_once_open(ws: WebSocketRoute) -> None:
        # A mocked socket opens in the page once the handler has returned.
        await expect(tab.get_by_test_id("conn-state")).to_have_attribute(
            "data-state", "open"
        )
        await ws.close(code=1013, reason=reason)

    async def accept_then_close(ws: WebSocketRoute) -> None:
        dialed_at.append(await tab.evaluate("Date.now()"))
        task = asyncio.create_task(close_once_open(ws))
        closing.add(task)
        task.add_done_callback(closing.discard)

    await tab.route_web_socket(FIREHOSE, accept_then_close)
    await tab.clock.install()
    await tab.goto(system.base_url + "/", wait_until="load")
    conn = tab.get_by_test_id("conn-state")
    await expect(conn).to_have_attribute("data-state", "reconnecting")
    async with asyncio.timeout(20):
        while len(dialed_at) < 6:
            await tab.clock.fast_forward(100)
            await asyncio.sleep(0.02)

    gaps = [b - a for a, b in itertools.pairwise(dialed_at)]
    # 0.5 s doubling, ±25 %: each pause is longer than the one before.
    assert all(b > a for a, b in itertools.pairwise(gaps)), gaps
    assert gaps[-1] >= 6_000, gaps
    await expect(conn).to_contain_text(reason)
    await expect(conn).to_have_attribute("title", re.compile(re.escape(reason)))
    recorded.assert_clean()


# ---------------------------------------------------------------------------
# A scripted firehose: the page is served by the system, but its orders come from
# frames the test sends (and the same frames as each order's /events), so what it
# shows can be checked for exact values no simulated venue would produce.

ANY_ORDER_LIST = re.compile(r"/api/orders\?limit=\d+$")
ONE_ORDER = re.compile(r"/api/orders/([0-9a-f-]{36})(/events)?$")


@dataclass
class ScriptedFirehose:
    sockets: list[WebSocketRoute] = field(default_factory=list)
    frames: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    position: int = 0

    def frame(
        self, order_id: str, type_: str, status: str, **fields: Any
    ) -> dict[str, Any]:
        """The next frame of ``order_id``, recorded for its /events, not yet sent."""
        self.position += 1
        history = self.frames.setdefault(order_id, [])
        frame = {
            "orderId": order_id,
            "status": status,
            "type": type_,
            "version": len(history) + 1,
            "position": self.position,
            "at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            **fields,
        }
        history.append(frame)
        return frame

    def send(self, *frames: dict[str, Any]) -> None:
        for frame in frames:
            self.sockets[-1].send(json.dumps(frame))

    def accepted(
        self,
        order_id: str,
        pair: str = "SOL-USDC",
        side: str = "sell",
        amount: str = "1",
    ) -> dict[str, Any]:
        return self.frame(
            order_id,
            "OrderAccepted",
            "pending",
            orderType="market",
            tokenPair=pair,
            side=side,
            amount=amount,
            slippageBps=50,
            clientOrderId=None,
        )

    def started(self, order_id: str, *, side: str = "sell") -> list[dict[str, Any]]:
        """An order accepted, then routing its first attempt."""
        return [
            self.accepted(order_id, side=side),
            self.frame(order_id, "RoutingStarted", "routing", attempt=1),
        ]

    def routed(
        self, order_id: str, *, side: str = "sell", **route: Any
    ) -> list[dict[str, Any]]:
        """``started``, then its first attempt routed (``quotes``, ``plan``, …)."""
        return [
            *self.started(order_id, side=side),
            self.frame(order_id, "RouteSelected", "building", attempt=1, **route),
        ]


def quote(venue: str, **amounts: str) -> dict[str, Any]:
    return {
        "venue": venue,
        "inAmount": "1",
        "outAmount": "150",
        "minAmountOut": "149.25",
        "maxAmountIn": "1",
        "fee": "0.0025",
        "priceImpactPct": "0.0001",
        "slot": 100,
        "expiresAt": "2030-01-01T00:00:00Z",
        **amounts,
    }


def plan(*legs: tuple[str, int], reason: str = "scripted") -> dict[str, Any]:
    return {
        "legs": [
            {"venue": venue, "bps": bps, "inAmount": "1", "outAmount": "150"}
            for venue, bps in legs
        ],
        "inAmount": "1",
        "outAmount": "150",
        "minAmountOut": "149.25",
        "maxAmountIn": "1",
        "gainBpsOverBestSingle": "0",
        "reason": reason,
    }


async def open_with_scripted_firehose(tab: Page, system: System) -> ScriptedFirehose:
    """The dashboard with an empty list and a firehose that sends what the test says."""
    scripted = ScriptedFirehose()

    async def empty_list(route: Route) -> None:
        await route.fulfill(json={"orders": [], "asOfPosition": 0, "nextCursor": None})

    async def one_order(route: Route) -> None:
        match = ONE_ORDER.search(route.request.url)
        assert match is not None
        order_id = match.group(1)
        if match.group(2):
            await route.fulfill(json={"events": scripted.frames.get(order_id, [])})
        else:
            await route.fulfill(
                json=scripted.details.get(order_id, {"orderId": order_id})
            )

    await tab.route(ANY_ORDER_LIST, empty_list)
    await tab.route(ONE_ORDER, one_order)

    def accept(ws: WebSocketRoute) -> None:
        scripted.sockets.append(ws)

    await tab.route_web_socket(FIREHOSE, accept)
    await tab.goto(system.base_url + "/", wait_until="load")
    await expect(tab.get_by_test_id("conn-state")).to_have_attribute(
        "data-state", "open"
    )
    return scripted


def new_order_id() -> str:
    return str(uuid.uuid4())


async def test_the_route_shown_is_the_current_attempts(
    page: tuple[Page, Recorded], system: System
) -> None:
    """A re-quote before building changes the plan the transaction carries: the row
    and the details show that plan and its quotes, not the routed ones; a retry
    clears the route until the next attempt is routed."""
    tab, recorded = page
    fh = await open_with_scripted_firehose(tab, system)
    order_id = new_order_id()
    requoted_plan = plan(("meteora", 10000), reason="re-quoted: meteora alone")
    fh.details[order_id] = {
        "orderId": order_id,
        "quotes": [quote("meteora", outAmount="151.5")],
        "routePlan": requoted_plan,
    }
    fh.send(
        *fh.routed(
            order_id,
            quotes=[
                quote("raydium", outAmount="150.25"),
                quote("meteora", outAmount="149"),
            ],
            plan=plan(("raydium", 10000), reason="routed: raydium alone"),
            venue="raydium",
        )
    )
    row = tab.locator(f'tr[data-order-id="{order_id}"]')
    route_cell = row.locator("td").nth(5)
    await expect(route_cell).to_have_text("raydium")

    fh.send(
        fh.frame(
            order_id,
            "TransactionSubmitted",
            "submitted",
            attempt=1,
            signature="5" * 64,
            blockhash="1" * 32,
            lastValidBlockHeight=1000,
            requoted=[quote("meteora", outAmount="151.5")],
            plan=requoted_plan,
        )
    )
    await expect(row.get_by_test_id("status")).to_have_text("submitted")
    await expect(route_cell).to_have_text("meteora")

    await row.click()
    quotes = tab.get_by_test_id("quotes")
    await expect(quotes.locator("tbody tr")).to_have_count(1)
    await expect(
        quotes.locator('tbody tr[data-venue="meteora"] td').nth(2)
    ).to_have_text("151.5")
    route = tab.get_by_test_id("route")
    await expect(route.locator("tbody tr td").first).to_have_text("meteora")
    await expect(tab.get_by_test_id("route-reason")).to_contain_text(
        "re-quoted: meteora alone"
    )

    fh.send(
        fh.frame(
            order_id,
            "RetryScheduled",
            "routing",
            attempt=2,
            failedAttempt=1,
            failure="NETWORK_ERROR",
            reason="the RPC node did not answer",
            delayMs=500,
        )
    )
    await expect(row.locator("td").nth(7)).to_have_text("2")
    await expect(route_cell).to_have_text("")
    await expect(route).to_have_text("no route yet")
    await expect(quotes.locator("tbody")).to_have_text("no quotes yet")
    recorded.assert_clean()


def confirmed(
    fh: ScriptedFirehose, order_id: str, final_price: str, *legs: tuple[str, int]
) -> dict[str, Any]:
    return fh.frame(
        order_id,
        "SwapConfirmed",
        "confirmed",
        attempt=1,
        txHash="5" * 64,
        slot=101,
        amountIn="1",
        amountOut="150",
        finalPrice=final_price,
        quotedAmountIn="1",
        quotedAmountOut="150",
        legs=plan(*legs)["legs"],
    )


async def test_a_lopsided_split_shows_its_fractional_shares(
    page: tuple[Page, Recorded], system: System
) -> None:
    """9960/40 bps is 99.6 % / 0.4 %, as the router's reason says, not 100 % / 0 %."""
    tab, recorded = page
    fh = await open_with_scripted_firehose(tab, system)
    order_id = new_order_id()
    split = plan(("raydium", 9960), ("meteora", 40), reason="split 99.6/0.4")
    fh.send(
        *fh.routed(order_id, quotes=[quote("raydium"), quote("meteora")], plan=split)
    )
    row = tab.locator(f'tr[data-order-id="{order_id}"]')
    await expect(row.locator("td").nth(5)).to_have_text("raydium 99.6% / meteora 0.4%")
    await row.click()
    shares = tab.get_by_test_id("route").locator("tbody tr td:nth-child(2)")
    await expect(shares).to_have_text(["99.6%", "0.4%"])
    await expect(tab.get_by_test_id("timeline-item").nth(2)).to_contain_text(
        "route raydium 99.6% / meteora 0.4%"
    )
    recorded.assert_clean()


async def test_amounts_and_prices_are_shown_in_plain_digits_unrounded(
    page: tuple[Page, Recorded], system: System
) -> None:
    """A BONK-SOL price of 0.00000013 is not 1.300e-7, 0.0004 is not 0.0004000, and
    an amount of 1500000.75 BONK is not rounded to 1,500,001; the cell's title keeps
    the exact value."""
    tab, recorded = page
    fh = await open_with_scripted_firehose(tab, system)
    bonk, moon = new_order_id(), new_order_id()
    fh.send(
        fh.accepted(bonk, pair="BONK-SOL", amount="1500000.75"),
        confirmed(fh, bonk, "0.00000013", ("raydium", 10000)),
        fh.accepted(moon, pair="MOON-SOL", amount="2"),
        confirmed(fh, moon, "0.0004", ("meteora", 10000)),
    )
    bonk_cells = tab.locator(f'tr[data-order-id="{bonk}"] td')
    await expect(bonk_cells.nth(4)).to_have_text("1,500,000.75")
    await expect(bonk_cells.nth(4)).to_have_attribute("title", "1500000.75")
    await expect(bonk_cells.nth(6)).to_have_text("0.00000013")
    await expect(bonk_cells.nth(6)).to_have_attribute("title", "0.00000013")
    moon_cells = tab.locator(f'tr[data-order-id="{moon}"] td')
    await expect(moon_cells.nth(6)).to_have_text("0.0004")
    await expect(moon_cells.nth(6)).to_have_attribute("title", "0.0004")
    log = tab.get_by_test_id("event-log").locator('li[data-type="SwapConfirmed"]')
    await expect(log.filter(has_text="@ 0.00000013 out 150")).to_have_count(1)
    recorded.assert_clean()


async def test_the_in_flight_filter_drops_an_order_once_it_finishes(
    page: tuple[Page, Recorded], system: System
) -> None:
    """With "in flight" chosen, an order shown while routing leaves the table when it
    confirms, and is back under "confirmed"."""
    tab, recorded = page
    fh = await open_with_scripted_firehose(tab, system)
    await tab.get_by_test_id("status-filter").select_option("active")
    order_id = new_order_id()
    fh.send(*fh.started(order_id))
    row = tab.locator(f'tr[data-order-id="{order_id}"]')
    await expect(row.get_by_test_id("status")).to_have_text("routing")

    fh.send(confirmed(fh, order_id, "150", ("raydium", 10000)))
    await expect(tab.get_by_test_id("kpi-confirmed")).to_have_text("1")
    await expect(row).to_have_count(0)
    await expect(tab.get_by_test_id("orders-count")).to_have_text("0 shown · 1 tracked")
    # The table is empty because of the filter, and says so.
    await expect(tab.get_by_test_id("orders-empty")).to_be_visible()
    await expect(tab.get_by_test_id("orders-empty")).to_have_text(
        'No in flight orders: the status filter hides all 1 tracked (choose "all" to'
        " see them)."
    )
    await tab.get_by_test_id("status-filter").select_option("confirmed")
    await expect(row.get_by_test_id("status")).to_have_text("confirmed")
    await expect(tab.get_by_test_id("orders-empty")).to_be_hidden()
    recorded.assert_clean()


def only_failed_loads(recorded: Recorded) -> None:
    """Clean but for the browser's own line for each refused request."""
    assert all("Failed to load resource" in e for e in recorded.console_errors), (
        recorded.console_errors
    )
    assert recorded.page_errors == [], recorded.page_errors
    assert recorded.non_local() == [], recorded.non_local()


async def test_pairs_and_config_are_retried_until_the_gateway_answers(
    page: tuple[Page, Recorded], system: System
) -> None:
    """A gateway that cannot answer /api/pairs and /api/config at first: the page
    says so, keeps Execute disabled without pairs, and loads both once it answers."""
    tab, recorded = page
    pairs_back = asyncio.Event()
    config_tries = 0

    async def pairs_later(route: Route) -> None:
        if pairs_back.is_set():
            await route.continue_()
        else:
            await route.fulfill(status=503, json={"detail": "starting"})

    async def config_third_time(route: Route) -> None:
        nonlocal config_tries
        config_tries += 1
        if config_tries > 2:
            await route.continue_()
        else:
            await route.fulfill(status=503, json={"detail": "starting"})

    await tab.route(re.compile(r"/api/pairs$"), pairs_later)
    await tab.route(re.compile(r"/api/config$"), config_third_time)
    await tab.goto(system.base_url + "/", wait_until="load")
    submit = tab.get_by_test_id("submit")
    await expect(tab.get_by_test_id("form-result")).to_have_text(
        re.compile(r"^Could not load pairs: 503: starting \(retrying\)$")
    )
    await expect(submit).to_be_disabled()
    await expect(tab.get_by_test_id("burst")).to_be_disabled()
    # The config came on its third try: the page found the notifier it names.
    await expect(tab.get_by_test_id("conn-state")).to_have_attribute(
        "data-state", "open"
    )
    assert config_tries == 3
    await expect(submit).to_be_disabled()

    pairs_back.set()
    await expect(tab.locator("#pair option")).not_to_have_count(0)
    await expect(submit).to_be_enabled()
    await expect(tab.get_by_test_id("form-result")).to_have_text("")
    await submit.click()
    await expect(tab.get_by_test_id("form-result")).to_have_text(
        re.compile(r"^accepted [0-9a-f-]{36}$")
    )
    only_failed_loads(recorded)


async def test_a_buys_quotes_show_the_most_it_may_pay(
    page: tuple[Page, Recorded], system: System
) -> None:
    """A buy (ExactOut) is bounded by maxAmountIn, its minAmountOut being just the
    amount bought: its quotes show "max in"; a sell's show "min out"."""
    tab, recorded = page
    fh = await open_with_scripted_firehose(tab, system)
    buy, sell = new_order_id(), new_order_id()
    for order_id, side, quotes in (
        (
            buy,
            "buy",
            [
                quote(
                    "raydium",
                    inAmount="0.2",
                    outAmount="30",
                    minAmountOut="30",
                    maxAmountIn="0.201",
                )
            ],
        ),
        (
            sell,
            "sell",
            [quote("raydium", outAmount="150", minAmountOut="149.25", maxAmountIn="1")],
        ),
    ):
        fh.send(
            *fh.routed(
                order_id, side=side, quotes=quotes, plan=plan(("raydium", 10000))
            )
        )
    table = tab.get_by_test_id("quotes")
    await tab.locator(f'tr[data-order-id="{buy}"]').click()
    await expect(table.locator("thead th").nth(3)).to_have_text("max in")
    await expect(table.locator("tbody tr td").nth(3)).to_have_text("0.201")
    await tab.get_by_test_id("details-close").click()
    await tab.locator(f'tr[data-order-id="{sell}"]').click()
    await expect(table.locator("thead th").nth(3)).to_have_text("min out")
    await expect(table.locator("tbody tr td").nth(3)).to_have_text("149.25")
    recorded.assert_clean()


async def test_a_slippage_that_is_no_number_is_shown_invalid_not_sent_as_the_default(
    page: tuple[Page, Recorded], system: System
) -> None:
    """The slippage field takes what the API takes (1 to 5000 bps). What it cannot
    parse is refused in the form: no order goes out with the default 50 bps."""
    tab, recorded = page
    await open_dashboard(tab, system)
    slippage = tab.get_by_test_id("slippage")
    await expect(slippage).to_have_attribute("min", "1")
    await expect(slippage).to_have_attribute("max", "5000")

    await slippage.fill("")
    await slippage.press_sequentially("1e")  # a number input cannot parse it: ""
    assert await slippage.evaluate("el => el.validity.badInput")
    await tab.get_by_test_id("submit").click()
    result = tab.get_by_test_id("form-result")
    await expect(result).to_have_text(re.compile(r"^slippageBps: not a whole number"))
    await expect(result).to_have_class(re.compile(r"\berr\b"))
    await expect(slippage).to_have_attribute("aria-invalid", "true")
    await tab.get_by_test_id("burst-count").fill("3")
    await tab.get_by_test_id("burst").click()
    await expect(tab.get_by_test_id("burst-status")).to_have_text(
        re.compile(r"^slippageBps: not a whole number")
    )
    assert not any("/api/orders/execute" in url for url in recorded.requests)

    await slippage.fill("75")
    await tab.get_by_test_id("submit").click()
    await expect(result).to_have_text(re.compile(r"^accepted [0-9a-f-]{36}$"))
    await expect(slippage).not_to_have_attribute("aria-invalid", "true")
    recorded.assert_clean()


async def test_the_reconnect_back_off_starts_over_after_a_frame_or_ten_seconds_open(
    page: tuple[Page, Recorded], system: System
) -> None:
    """A connection that delivered a frame, or stayed open 10 s, worked: the next
    reconnect after it comes soon again, however long the pauses had grown."""
    tab, recorded = page
    dialed_at: list[int] = []
    closed_at: list[int] = []
    tasks: set[asyncio.Task[None]] = set()
    now = "Date.now()"

    async def serve(ws: WebSocketRoute, dial: int) -> None:
        await expect(tab.get_by_test_id("conn-state")).to_have_attribute(
            "data-state", "open"
        )
        if dial == 5:  # the dial that gets a frame
            order_id = new_order_id()
            position = await tab.evaluate("window.dashboard.lastPosition") + 1
            accepted = ScriptedFirehose(position=position - 1).accepted(order_id)
            ws.send(json.dumps(accepted))
            await expect(tab.locator(f'tr[data-order-id="{order_id}"]')).to_have_count(
                1
            )
        elif dial == 9:  # the dial that stays open 10 s
            opened = await tab.evaluate(now)
            while await tab.evaluate(now) < opened + 10_500:
                await asyncio.sleep(0.02)
        closed_at.append(await tab.evaluate(now))
        await ws.close(code=1013, reason="fell behind; resume with ?after=1")

    async def dialed(ws: WebSocketRoute) -> None:
        dialed_at.append(await tab.evaluate(now))
        task = asyncio.create_task(serve(ws, len(dialed_at)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    await tab.route_web_socket(FIREHOSE, dialed)
    await tab.clock.install()
    await tab.goto(system.base_url + "/", wait_until="load")
    async with asyncio.timeout(30):
        while len(dialed_at) < 10:
            await tab.clock.fast_forward(100)
            await asyncio.sleep(0.02)

    pause = [dialed_at[i + 1] - closed_at[i] for i in range(9)]
    # Grown to 2-5 s by dial 4; a frame on dial 5, 10 s open on dial 9: ~0.5 s again.
    assert pause[3] >= 3_000, pause
    assert pause[4] < 1_500, pause
    assert pause[7] >= 1_500, pause
    assert pause[8] < 1_500, pause
    recorded.assert_clean()


def iso(ms: int) -> str:
    """A page clock's milliseconds as the frames' ``at``."""
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


async def test_the_charts_cover_their_whole_window_at_fifty_orders_a_second(
    page: tuple[Page, Recorded], system: System
) -> None:
    """Four minutes at 50 completions/s (12,000 orders, more than the page tracks):
    the 3 min average is the 50/s fed, not what a count-capped history keeps, and
    the 60 s latency window holds all of its seconds."""
    tab, recorded = page
    await tab.clock.install()
    fh = await open_with_scripted_firehose(tab, system)
    # Time stands still while the frames go in; the page's second is then known.
    paused = (await tab.evaluate("Date.now()") // 1000 + 3) * 1000 + 500
    await tab.clock.pause_at(datetime.fromtimestamp(paused / 1000, UTC))
    now_s = paused // 1000
    rate = 50
    # From 240 s before the shown second to the next one: whichever second the
    # page's once-a-second update falls in, its 3 min and 60 s are all fed.
    for second in range(now_s - 240, now_s + 2):
        # A sixth of each second's orders take 900 ms, the rest 100 ms.
        batch = []
        for i in range(rate):
            done = second * 1000 + i * 10
            latency = 900 if i < rate // 6 else 100
            order_id = new_order_id()
            batch += [
                {**fh.accepted(order_id), "at": iso(done - latency)},
                {**confirmed(fh, order_id, "150", ("raydium", 10000)), "at": iso(done)},
            ]
        fh.sockets[-1].send(json.dumps(batch))
    async with asyncio.timeout(60):
        while await tab.evaluate("window.dashboard.lastPosition") != fh.position:
            await asyncio.sleep(0.1)
    await tab.clock.run_for(1_000)  # one update, in the second shown or the next
    await expect(tab.get_by_test_id("tput-now")).to_have_text(
        "ok · failed /s: 10 s avg 50.0 · 0.0 · 3 min avg 50.0 · 0.0"
    )
    # 8 of every second's 50 took 900 ms: p50 100 ms, p95 and p99 900 ms.
    await expect(tab.get_by_test_id("latency-now")).to_have_text(
        "p50 100 ms · p95 900 ms · p99 900 ms"
    )
    await expect(tab.get_by_test_id("venue-now")).to_have_text("raydium 100%")
    recorded.assert_clean()


async def test_an_order_first_seen_mid_stream_counts_its_latency_once_its_history_comes(
    page: tuple[Page, Recorded], system: System
) -> None:
    """An order the page first hears of mid-stream learns when it was created from
    its history: history that comes after the order's end still puts its latency in
    the percentiles, and a fetch of it that fails is tried again."""
    tab, recorded = page
    fh = await open_with_scripted_firehose(tab, system)
    late, failing = new_order_id(), new_order_id()
    release = asyncio.Event()
    tries = {late: 0, failing: 0}

    async def history(route: Route) -> None:
        match = ONE_ORDER.search(route.request.url)
        assert match is not None
        order_id = match.group(1)
        tries[order_id] += 1
        if order_id == failing and tries[order_id] == 1:
            await route.fulfill(status=503, json={"detail": "starting"})
            return
        if order_id == late:
            await release.wait()
        await route.fulfill(json={"events": fh.frames[order_id]})

    for order_id in (late, failing):
        await tab.route(f"**/api/orders/{order_id}/events", history)
    latency = tab.get_by_test_id("latency-now")

    async def mid_stream(order_id: str, lasted_ms: int, venue: str) -> None:
        """Sends its second and last events; it was accepted lasted_ms before."""
        ended = await tab.evaluate("Date.now()")
        fh.accepted(order_id)["at"] = iso(ended - lasted_ms)  # never sent
        routing = fh.frame(order_id, "RoutingStarted", "routing", attempt=1)
        routing["at"] = iso(ended - lasted_ms // 2)
        done = confirmed(fh, order_id, "150", (venue, 10000))
        done["at"] = iso(ended)
        fh.send(routing, done)

    # Its history comes only once the order is over, 4 s after it was accepted.
    await mid_stream(late, 4_000, "raydium")
    late_row = tab.locator(f'tr[data-order-id="{late}"]')
    await expect(late_row.get_by_test_id("status")).to_have_text("confirmed")
    release.set()
    await expect(late_row.get_by_test_id("row-pair")).to_have_text("SOL-USDC")
    await expect(latency).to_have_text("p50 4.00 s · p95 4.00 s · p99 4.00 s")

    # The first fetch of its history fails (503): the page asks again.
    await mid_stream(failing, 2_000, "meteora")
    failing_row = tab.locator(f'tr[data-order-id="{failing}"]')
    await expect(failing_row.get_by_test_id("row-pair")).to_have_text("SOL-USDC")
    await expect(latency).to_have_text("p50 2.00 s · p95 4.00 s · p99 4.00 s")
    assert tries == {late: 1, failing: 2}
    only_failed_loads(recorded)
