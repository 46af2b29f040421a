"""Metrics, readiness, the AsyncAPI contract and order-scoped logs on live services."""

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest

from tests.integration import probes
from tests.integration.clients import submit, wait_for_status
from tests.integration.system import SERVICES, System

pytestmark = pytest.mark.integration

ORDER = {"amount": 3, "tokenPair": "SOL-USDC", "type": "market"}
CONSUMING = ("router", "executor", "notifier")


async def _get(system: System, service: str, path: str) -> httpx.Response:
    url = f"http://127.0.0.1:{system.port(service)}{path}"
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(url)


@pytest.fixture(scope="module")
async def confirmed_order(system: System) -> tuple[str, str]:
    """(order id, correlation id) of an order that confirmed."""
    correlation_id = str(uuid.uuid4())
    answer = await submit(system, ORDER, headers={"X-Request-ID": correlation_id})
    assert answer.status_code == 202
    order_id: str = answer.json()["orderId"]
    await wait_for_status(system, order_id, {"confirmed"})
    return order_id, correlation_id


@pytest.mark.parametrize("service", SERVICES)
async def test_every_service_serves_metrics(system: System, service: str) -> None:
    """/metrics answers Prometheus text with the oe_ families on each service."""
    samples = await probes.metric_samples(system, service)
    assert "oe_relay_lag_events" in samples
    assert "oe_order_stage_seconds_bucket" in samples


# What one confirmed order adds to each counter, where each fact is recorded.
ONE_ORDER: tuple[tuple[str, str, dict[str, str], float], ...] = (
    ("gateway", "oe_orders_accepted_total", {}, 1),
    (
        "executor",
        "oe_orders_completed_total",
        {"outcome": "confirmed", "failure_class": "none"},
        1,
    ),
    ("router", "oe_order_stage_seconds_count", {"stage": "accepted_to_routed"}, 1),
    ("executor", "oe_order_stage_seconds_count", {"stage": "routed_to_submitted"}, 1),
    (
        "executor",
        "oe_order_stage_seconds_count",
        {"stage": "submitted_to_confirmed"},
        1,
    ),
    ("executor", "oe_order_stage_seconds_count", {"stage": "accepted_to_terminal"}, 1),
    (
        "router",
        "oe_consumer_messages_total",
        {"consumer": "router", "event_type": "OrderAccepted", "outcome": "ack"},
        1,
    ),
    (
        "executor",
        "oe_consumer_messages_total",
        {"consumer": "executor", "event_type": "RouteSelected", "outcome": "ack"},
        1,
    ),
    # pending, routing, building, submitted, confirmed
    ("notifier", "oe_consumer_messages_total", {"consumer": "notifier"}, 5),
)


async def _all_samples(system: System) -> dict[str, probes.Samples]:
    return {
        service: await probes.metric_samples(system, service) for service in SERVICES
    }


def _published(samples: dict[str, probes.Samples]) -> float:
    # The relay runs in whichever service holds its lock.
    return sum(
        probes.metric_value(s, "oe_relay_events_published_total")
        for s in samples.values()
    )


async def test_one_confirmed_order_moves_each_counter_by_its_own_events(
    system: System,
) -> None:
    """One order adds exactly its own facts: 1 accepted, 1 confirmed, 5 published."""
    async with asyncio.timeout(30):  # earlier tests' orders have all finished
        while await probes.metric(
            system, "gateway", "oe_orders_in_flight"
        ) or await probes.metric(system, "gateway", "oe_relay_lag_events"):
            await asyncio.sleep(0.2)
    before = await _all_samples(system)

    answer = await submit(system, ORDER)
    assert answer.status_code == 202
    await wait_for_status(system, answer.json()["orderId"], {"confirmed"})

    def moved(after: dict[str, probes.Samples]) -> list[float]:
        return [
            probes.metric_value(after[service], name, **labels)
            - probes.metric_value(before[service], name, **labels)
            for service, name, labels, _ in ONE_ORDER
        ] + [_published(after) - _published(before)]

    expected = [delta for *_, delta in ONE_ORDER] + [5]
    # The notifier counts a message once it has pushed it, a moment after the frame.
    async with asyncio.timeout(10):
        while True:
            deltas = moved(await _all_samples(system))
            if all(d >= e for d, e in zip(deltas, expected, strict=True)):
                break
            await asyncio.sleep(0.1)
    assert deltas == expected
    after = await _all_samples(system)
    for stage in ("routed_to_submitted", "submitted_to_confirmed"):
        assert probes.metric_value(
            after["executor"], "oe_order_stage_seconds_sum", stage=stage
        ) > probes.metric_value(
            before["executor"], "oe_order_stage_seconds_sum", stage=stage
        )


async def test_relay_lag_settles_to_zero(system: System) -> None:
    """Once nothing is being recorded, the sampled relay lag drops to 0."""
    async with asyncio.timeout(15):
        while True:
            samples = await probes.metric_samples(system, "gateway")
            # Present, not merely read as 0 for want of a sample.
            assert "oe_relay_lag_events" in samples, sorted(samples)
            if probes.metric_value(samples, "oe_relay_lag_events") == 0:
                break
            await asyncio.sleep(0.5)


@pytest.mark.parametrize("service", CONSUMING)
async def test_readiness_reports_consumers_attached(
    system: System, service: str
) -> None:
    """/readyz on a consuming service checks its queue has a consumer."""
    response = await _get(system, service, "/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {
        "store": True,
        "broker": True,
        "background": True,
        "consumers": True,
    }


async def test_gateway_readiness_checks_store_and_broker(system: System) -> None:
    """The gateway consumes nothing: ready means store and broker answer."""
    response = await _get(system, "gateway", "/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"store": True, "broker": True, "background": True},
    }


async def test_the_gateway_serves_the_event_contract(system: System) -> None:
    """/asyncapi.json is the AsyncAPI document; /asyncapi is a page about it."""
    document = await _get(system, "gateway", "/asyncapi.json")
    assert document.status_code == 200
    assert document.json()["asyncapi"] == "3.0.0"
    assert "EventEnvelope" in document.json()["components"]["schemas"]
    page = await _get(system, "gateway", "/asyncapi")
    assert page.status_code == 200
    assert "order.OrderAccepted" in page.text
    assert "<script" not in page.text


def _lines(system: System, instance: str) -> list[dict[str, Any]]:
    text = (system.logs / f"{instance}.log").read_text()
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


async def test_logs_name_the_order_and_its_correlation_id(
    system: System, confirmed_order: tuple[str, str]
) -> None:
    """Gateway and consumers log JSON lines carrying order_id and correlation_id."""
    order_id, correlation_id = confirmed_order

    gateway = [
        line for line in _lines(system, "gateway") if line.get("order_id") == order_id
    ]
    assert gateway, "the gateway logged nothing about the order"
    assert all(line["correlation_id"] == correlation_id for line in gateway)
    assert any(line["event"] == "order accepted" for line in gateway)

    for instance, handled_types in (
        ("router", {"OrderAccepted"}),
        ("executor", {"RouteSelected"}),
    ):
        about = [
            line
            for line in _lines(system, instance)
            if line.get("order_id") == order_id
        ]
        assert all(line["correlation_id"] == correlation_id for line in about)
        handled = [line for line in about if line["event"] == "handled"]
        assert {line["event_type"] for line in handled} >= handled_types
        assert all(line["outcome"] == "ack" for line in handled)
        # One INFO line per handled event: nothing else at INFO about the order.
        assert [line for line in about if line["level"] == "info"] == handled


@pytest.mark.parametrize("service", SERVICES)
async def test_every_service_serves_docs_and_contracts_without_a_cdn(
    system: System, service: str
) -> None:
    """/docs, /asyncapi.json and /metrics answer on every service, served locally."""
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{system.port(service)}", timeout=5
    ) as client:
        docs = await client.get("/docs")
        bundle = await client.get("/swagger-ui/swagger-ui-bundle.js")
        contract = await client.get("/asyncapi.json")
        metrics = await client.get("/metrics")

    assert docs.status_code == 200
    assert "/swagger-ui/swagger-ui-bundle.js" in docs.text
    assert "cdn." not in docs.text
    assert bundle.status_code == 200
    assert len(bundle.content) > 100_000
    assert contract.json()["asyncapi"].startswith("3.")
    assert metrics.status_code == 200
