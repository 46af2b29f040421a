"""Metrics and canonical log lines, recorded where the facts are decided."""

import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from uuid import UUID, uuid4

import psycopg
import pytest
from faststream.rabbit import RabbitMessage
from prometheus_client import REGISTRY, generate_latest

from shared import metrics
from shared.domain.envelope import EventEnvelope, NewEvent, event_id_for
from shared.domain.events import (
    OrderAccepted,
    OrderType,
    RouteSelected,
    SwapConfirmed,
    TransactionSubmitted,
)
from shared.domain.order import Phase, decide_attempt_failed, decide_start_routing
from shared.domain.pairs import Side
from shared.domain.quotes import RouteLeg, RoutePlan, Venue
from shared.domain.retry import FailureClass, RetryPolicy
from shared.eventstore.memory import InMemoryEventStore
from shared.eventstore.orders import Orders
from shared.eventstore.port import NO_STREAM, WrongExpectedVersionError
from shared.logging import formatter
from shared.messaging.delivery import settle
from shared.settings import Settings

CONSUMER = "unit-test"


@dataclass
class FakeRaw:
    redelivered: bool = False
    type: str | None = None


@dataclass
class FakeMessage:
    """The parts of a FastStream RabbitMessage that ``settle`` touches."""

    body: bytes
    raw_message: FakeRaw = field(default_factory=FakeRaw)
    headers: dict[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None
    settled: list[str] = field(default_factory=list)

    async def ack(self) -> None:
        self.settled.append("ack")

    async def nack(self, requeue: bool = True) -> None:
        self.settled.append("requeue" if requeue else "nack")

    async def reject(self) -> None:
        self.settled.append("reject")


Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def log_lines() -> Iterator[Lines]:
    """The lines the delivery logger wrote, rendered by the services' formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(Settings(log_format="json"), service="test"))
    delivery_logger = logging.getLogger("shared.messaging.delivery")
    delivery_logger.addHandler(handler)
    previous = delivery_logger.level
    delivery_logger.setLevel(logging.DEBUG)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        delivery_logger.removeHandler(handler)
        delivery_logger.setLevel(previous)


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _accepted_envelope(order_id: UUID, correlation_id: UUID) -> EventEnvelope:
    return EventEnvelope(
        event_id=event_id_for(order_id, "OrderAccepted", 0),
        order_id=order_id,
        stream_version=1,
        global_position=7,
        type="OrderAccepted",
        recorded_at=datetime.now(UTC),
        correlation_id=correlation_id,
        event=_accepted(order_id),
    )


def _accepted(order_id: UUID) -> OrderAccepted:
    return OrderAccepted(
        order_id=order_id,
        order_type=OrderType.MARKET,
        token_pair="SOL-USDC",
        side=Side.SELL,
        amount=Decimal(10),
        slippage_bps=50,
    )


def _message(envelope: EventEnvelope, *, redelivered: bool = False) -> RabbitMessage:
    fake = FakeMessage(
        body=envelope.model_dump_json(by_alias=True).encode(),
        raw_message=FakeRaw(redelivered=redelivered, type=envelope.type),
        correlation_id=str(envelope.correlation_id),
    )
    return cast("RabbitMessage", fake)


def _settled(message: RabbitMessage) -> list[str]:
    return cast("FakeMessage", message).settled


async def test_an_acked_delivery_logs_one_handled_line_with_its_ids(
    log_lines: Lines,
) -> None:
    """settle() acks, counts the delivery and logs exactly one `handled` line."""
    order_id, correlation_id = uuid4(), uuid4()
    envelope = _accepted_envelope(order_id, correlation_id)
    message = _message(envelope, redelivered=True)
    before = _value(
        "oe_consumer_messages_total",
        consumer=CONSUMER,
        event_type="OrderAccepted",
        outcome="ack",
    )
    redeliveries = _value("oe_consumer_redeliveries_total", consumer=CONSUMER)
    timed = _value(
        "oe_consumer_handle_seconds_count",
        consumer=CONSUMER,
        event_type="OrderAccepted",
    )
    inner = logging.getLogger("shared.messaging.delivery")

    async def handler(received: EventEnvelope) -> None:
        assert received == envelope
        inner.debug("deciding")  # a handler's own line carries the ids too

    await settle(message, handler, consumer=CONSUMER)

    assert _settled(message) == ["ack"]
    after = _value(
        "oe_consumer_messages_total",
        consumer=CONSUMER,
        event_type="OrderAccepted",
        outcome="ack",
    )
    assert after == before + 1
    assert _value("oe_consumer_redeliveries_total", consumer=CONSUMER) == (
        redeliveries + 1
    )
    assert (
        _value(
            "oe_consumer_handle_seconds_count",
            consumer=CONSUMER,
            event_type="OrderAccepted",
        )
        == timed + 1
    )
    log_lines_after = log_lines()
    handled = [line for line in log_lines_after if line["event"] == "handled"]
    assert len(handled) == 1
    line = handled[0]
    assert line["order_id"] == str(order_id)
    assert line["correlation_id"] == str(correlation_id)
    assert line["event_type"] == "OrderAccepted"
    assert line["outcome"] == "ack"
    assert line["level"] == "info"
    assert isinstance(line["duration_ms"], float)
    deciding = [line for line in log_lines_after if line["event"] == "deciding"]
    assert deciding[0]["order_id"] == str(order_id)
    assert deciding[0]["correlation_id"] == str(correlation_id)


async def test_a_failing_handler_parks_and_counts_it(
    log_lines: Lines,
) -> None:
    """A poison message is rejected, counted as parked, logged once at ERROR."""
    order_id, correlation_id = uuid4(), uuid4()
    message = _message(_accepted_envelope(order_id, correlation_id))
    parked = _value(
        "oe_consumer_parked_total", consumer=CONSUMER, reason="handler_error"
    )

    async def handler(_: EventEnvelope) -> None:
        raise ValueError("cannot decide")

    await settle(message, handler, consumer=CONSUMER)

    assert _settled(message) == ["reject"]
    assert _value(
        "oe_consumer_parked_total", consumer=CONSUMER, reason="handler_error"
    ) == (parked + 1)
    handled = [line for line in log_lines() if line["event"] == "handled"]
    assert len(handled) == 1
    assert handled[0]["outcome"] == "parked"
    assert handled[0]["level"] == "error"
    assert handled[0]["order_id"] == str(order_id)
    assert handled[0]["correlation_id"] == str(correlation_id)
    assert "cannot decide" in handled[0]["exception"]


@pytest.mark.parametrize(
    "outage",
    [
        psycopg.OperationalError("database away"),
        psycopg.errors.ReadOnlySqlTransaction("read-only transaction"),
    ],
    ids=["the store away", "a demoted primary"],
)
async def test_an_outage_longer_than_the_patience_is_waited_out_then_acked(
    log_lines: Lines, outage: psycopg.Error
) -> None:
    """The store away past the patience: the message is held, not requeued (each
    requeue counts toward the delivery limit and would park a healthy order)."""
    message = _message(_accepted_envelope(uuid4(), uuid4()))
    failures = iter(range(4))

    async def handler(_: EventEnvelope) -> None:
        if next(failures, None) is not None:
            raise outage

    await settle(message, handler, consumer=CONSUMER, patience_s=0)

    assert _settled(message) == ["ack"]
    handled = [line for line in log_lines() if line["event"] == "handled"]
    assert [line["outcome"] for line in handled] == ["ack"]
    retrying = [line for line in log_lines() if line.get("kind") == "delivery_retry"]
    assert len(retrying) == 1, "one warning, not one per retry"


async def test_contention_past_the_patience_requeues(
    log_lines: Lines,
) -> None:
    """Another writer winning the stream past the patience: requeued for another
    replica, counted and logged once."""
    message = _message(_accepted_envelope(uuid4(), uuid4()))
    before = _value(
        "oe_consumer_messages_total",
        consumer=CONSUMER,
        event_type="OrderAccepted",
        outcome="requeue",
    )

    async def handler(envelope: EventEnvelope) -> None:
        raise WrongExpectedVersionError(envelope.order_id, 1, 2)

    await settle(message, handler, consumer=CONSUMER, patience_s=0)

    assert _settled(message) == ["requeue"]
    assert (
        _value(
            "oe_consumer_messages_total",
            consumer=CONSUMER,
            event_type="OrderAccepted",
            outcome="requeue",
        )
        == before + 1
    )
    handled = [line for line in log_lines() if line["event"] == "handled"]
    assert [line["outcome"] for line in handled] == ["requeue"]


async def test_a_brief_fault_is_retried_in_place_and_acked(
    log_lines: Lines,
) -> None:
    """The store away for a moment: the handler runs again, the delivery is acked
    once and logged once."""
    message = _message(_accepted_envelope(uuid4(), uuid4()))
    calls = 0

    async def handler(_: EventEnvelope) -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise psycopg.OperationalError("database away")

    await settle(message, handler, consumer=CONSUMER)

    assert calls == 3
    assert _settled(message) == ["ack"]
    handled = [line for line in log_lines() if line["event"] == "handled"]
    assert [line["outcome"] for line in handled] == ["ack"]


async def test_an_undecodable_message_is_parked_with_the_ids_it_has(
    log_lines: Lines,
) -> None:
    """Bytes that are no envelope are parked; headers still name the order."""
    order_id = str(uuid4())
    fake = FakeMessage(
        body=b"{not json",
        raw_message=FakeRaw(type="Nonsense<script>"),
        headers={"order-id": order_id},
        correlation_id="c-1",
    )
    parked = _value("oe_consumer_parked_total", consumer=CONSUMER, reason="undecodable")

    async def handler(_: EventEnvelope) -> None:  # pragma: no cover - never called
        raise AssertionError

    await settle(cast("RabbitMessage", fake), handler, consumer=CONSUMER)

    assert fake.settled == ["reject"]
    assert _value(
        "oe_consumer_parked_total", consumer=CONSUMER, reason="undecodable"
    ) == (parked + 1)
    handled = [line for line in log_lines() if line["event"] == "handled"]
    assert len(handled) == 1
    assert handled[0]["order_id"] == order_id
    assert handled[0]["correlation_id"] == "c-1"
    assert handled[0]["event_type"] == "unknown"  # label values stay a small set


def _plan() -> RoutePlan:
    return RoutePlan(
        legs=(
            RouteLeg(
                venue=Venue.RAYDIUM,
                bps=10_000,
                in_amount=Decimal(10),
                out_amount=Decimal(1800),
            ),
        ),
        in_amount=Decimal(10),
        out_amount=Decimal(1800),
        min_amount_out=Decimal(1791),
        max_amount_in=Decimal(10),
        gain_bps_over_best_single=Decimal(0),
        reason="raydium alone",
    )


def _envelope(order_id: UUID, version: int, event: Any, at: datetime) -> EventEnvelope:
    return EventEnvelope(
        event_id=uuid4(),
        order_id=order_id,
        stream_version=version,
        global_position=version,
        type=event.type,
        recorded_at=at,
        correlation_id=order_id,
        event=event,
    )


def test_stage_latencies_come_from_recorded_at() -> None:
    """Each stage is observed from the earlier event's recorded_at to now."""
    order_id = uuid4()
    t0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    routed = RouteSelected(attempt=1, quotes=(), plan=_plan())
    submitted = TransactionSubmitted(
        attempt=1,
        signature="sig",
        blockhash="bh",
        last_valid_block_height=10,
        signed_transaction="tx",
    )
    history = [
        _envelope(order_id, 1, _accepted(order_id), t0),
        _envelope(order_id, 2, routed, t0 + timedelta(milliseconds=40)),
        _envelope(order_id, 3, submitted, t0 + timedelta(milliseconds=90)),
    ]
    confirmed = SwapConfirmed(
        attempt=1,
        tx_hash="sig",
        slot=5,
        amount_in=Decimal(10),
        amount_out=Decimal(1799),
        final_price=Decimal("179.9"),
        quoted_amount_in=Decimal(10),
        quoted_amount_out=Decimal(1800),
        legs=_plan().legs,
    )
    before = {
        stage: _value("oe_order_stage_seconds_sum", stage=stage)
        for stage in metrics.STAGES
    }
    confirmed_before = _value(
        "oe_orders_completed_total", outcome="confirmed", failure_class="none"
    )

    def recorded_at(envelopes: list[EventEnvelope]) -> dict[str, datetime]:
        return {e.type: e.recorded_at for e in envelopes}

    metrics.observe_recorded(
        recorded_at(history), [confirmed], t0 + timedelta(seconds=2)
    )
    metrics.observe_recorded(
        recorded_at(history[:1]), [routed], t0 + timedelta(milliseconds=40)
    )
    metrics.observe_recorded(
        recorded_at(history[:2]), [submitted], t0 + timedelta(milliseconds=90)
    )

    def added(stage: str) -> float:
        return _value("oe_order_stage_seconds_sum", stage=stage) - before[stage]

    assert added("submitted_to_confirmed") == pytest.approx(1.91)
    assert added("accepted_to_terminal") == pytest.approx(2.0)
    assert added("accepted_to_routed") == pytest.approx(0.04)
    assert added("routed_to_submitted") == pytest.approx(0.05)
    assert _value(
        "oe_orders_completed_total", outcome="confirmed", failure_class="none"
    ) == (confirmed_before + 1)


async def test_outcomes_are_counted_once_where_they_are_recorded() -> None:
    """Orders.decide counts a failure once; deciding it again records nothing."""
    store = InMemoryEventStore()
    orders = Orders(store)
    order_id = uuid4()
    cause = NewEvent(
        event_id=event_id_for(order_id, "OrderAccepted", 0),
        event=_accepted(order_id),
        correlation_id=uuid4(),
    )
    await store.append(order_id, [cause], expected_version=NO_STREAM)
    accepted = (await store.read_stream(order_id))[0]
    await orders.decide(order_id, decide_start_routing, cause=accepted)
    failure = FailureClass.INSUFFICIENT_LIQUIDITY
    label = {"outcome": "failed", "failure_class": failure.value}
    before = _value("oe_orders_completed_total", **label)
    terminal = _value("oe_order_stage_seconds_count", stage="accepted_to_terminal")

    def fail(state: Any) -> Any:
        return decide_attempt_failed(
            state,
            attempt=1,
            phase=Phase.ROUTING,
            failure=failure,
            reason="too big",
            policy=RetryPolicy(),
        )

    _, first = await orders.decide(order_id, fail, cause=accepted)
    _, second = await orders.decide(order_id, fail, cause=accepted)

    assert [e.type for e in first] == ["OrderFailed"]
    assert second == []
    assert _value("oe_orders_completed_total", **label) == before + 1
    assert (
        _value("oe_order_stage_seconds_count", stage="accepted_to_terminal")
        == terminal + 1
    )


def test_every_metric_has_help_and_the_oe_prefix() -> None:
    """The exposition names each oe_ metric with a HELP text."""
    text = generate_latest().decode()
    helps = {
        line.split()[2]: line
        for line in text.splitlines()
        if line.startswith("# HELP oe_")
    }
    for name in (
        "oe_orders_completed_total",
        "oe_order_retries_total",
        "oe_order_stage_seconds",
        "oe_relay_lag_events",
        "oe_relay_events_published_total",
        "oe_projection_lag_events",
        "oe_consumer_messages_total",
        "oe_consumer_handle_seconds",
        "oe_consumer_redeliveries_total",
        "oe_consumer_parked_total",
        "oe_consumer_queue_messages",
        "oe_websocket_connections",
        "oe_websocket_frames_sent_total",
    ):
        assert name in helps, f"{name} missing from /metrics"
        assert len(helps[name].split(" ", 3)[3]) > 20, f"{name} has no real help"
