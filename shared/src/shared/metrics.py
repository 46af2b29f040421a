"""Every Prometheus metric of every service, defined once; ``/metrics`` serves them.

Names start with ``oe_``. Counters are incremented where the fact is decided (the
append that records an outcome, the settle of a delivery, the relay's confirm), never
by replaying the store. Gauges about the log (relay and projection lag, queue depth)
are sampled by a background task (``shared.service.runtime``), off the hot path.

Orders and stages
    ``oe_orders_accepted_total``                    orders the gateway recorded
    ``oe_orders_completed_total{outcome,failure_class}``  confirmed | failed
    ``oe_order_retries_total{failure_class}``       attempts that will be retried
    ``oe_order_stage_seconds{stage}``               time between two recorded events
Relay and projections
    ``oe_store_head_position``                      last global position in the store
    ``oe_relay_lag_events``                         head - relay checkpoint
    ``oe_relay_events_published_total``             events confirmed by the broker
    ``oe_relay_leader``                             1 in the process that publishes
    ``oe_leader_lock_tries_total{lock,outcome}``    held | refused (a standby's grows)
    ``oe_projection_lag_events{projection}``        head - projection checkpoint
Consumers
    ``oe_consumer_messages_total{consumer,event_type,outcome}``  ack | requeue | parked
    ``oe_consumer_handle_seconds{consumer,event_type}``
    ``oe_consumer_redeliveries_total{consumer}``
    ``oe_consumer_parked_total{consumer,reason}``   undecodable | handler_error
    ``oe_consumer_queue_messages{queue}``           ready messages (passive declare)
    ``oe_consumer_queue_consumers{queue}``          consumers attached to the queue
    ``oe_events_passed_over_total{reader,reason}``  newer | unreadable
    ``oe_notifier_hub_lag_events``                  head - what the hub has put in order
WebSocket
    ``oe_websocket_connections{kind}``              open connections: order | firehose
    ``oe_websocket_frames_sent_total{kind}``
"""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final

from prometheus_client import Counter, Gauge, Histogram

from shared.domain.events import (
    OrderEvent,
    OrderFailed,
    RetryScheduled,
    RouteSelected,
    SwapConfirmed,
    TransactionSubmitted,
)
from shared.domain.retry import FailureClass

#: 10 ms .. 10 s: a healthy stage takes tens of ms (routing) to a few s (landing).
LATENCY_BUCKETS: Final = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.0,
    3.0,
    5.0,
    7.5,
    10.0,
)
#: Handler durations: from a fast ack (1 ms) to watching a transaction land.
HANDLER_BUCKETS: Final = (0.001, 0.005, *LATENCY_BUCKETS, 30.0, 60.0)

STAGES: Final = (
    "accepted_to_routed",
    "routed_to_submitted",
    "submitted_to_confirmed",
    "accepted_to_terminal",
)
OUTCOMES: Final = ("ack", "requeue", "parked")
WEBSOCKET_KINDS: Final = ("order", "firehose")
NO_FAILURE: Final = "none"

# --- orders -------------------------------------------------------------------------

ORDERS_ACCEPTED = Counter(
    "oe_orders_accepted",
    "Orders recorded by the gateway (OrderAccepted appended; idempotent replays"
    " are not counted).",
)
ORDERS_IN_FLIGHT = Gauge(
    "oe_orders_in_flight",
    "Orders neither confirmed nor failed, as the gateway counts them for admission.",
)
ORDERS_STALLED = Gauge(
    "oe_orders_stalled",
    "Orders neither confirmed nor failed with nothing recorded for STALLED_AFTER_MS,"
    " by status, as the gateway's read model shows them: an order whose trigger"
    " is parked, or an engine too far behind. Alert on it above 0.",
    ["status"],
)
ORDERS_STALLED_CHECKED = Gauge(
    "oe_orders_stalled_checked_timestamp_seconds",
    "When oe_orders_stalled was last brought up to date (Unix time). While the"
    " store cannot be read it keeps its last counts; alert when this falls behind.",
)
ORDERS_REFUSED = Counter(
    "oe_orders_refused",
    "New orders refused with 503 because the engine was at its in-flight limit.",
)
ADMISSION_LIMIT = Gauge(
    "oe_admission_limit",
    "Orders in flight the gateway admits now: MAX_ORDERS_IN_FLIGHT, or less while"
    " orders queue inside the engine (0: no limit).",
)
ENGINE_WAIT = Gauge(
    "oe_admission_engine_wait_seconds",
    "How long orders have waited for a router or an executor (the fourth-longest"
    " wait, as the gateway's read model shows it): what the adaptive limit steers"
    " by.",
)
RETRY_AFTER = Gauge(
    "oe_admission_retry_after_seconds",
    "Retry-After given with the latest refusal at the in-flight limit: the"
    " gateway's estimate of the wait for room.",
)
ORDERS_COMPLETED = Counter(
    "oe_orders_completed",
    "Orders that reached a terminal status, counted by the handler that recorded"
    " it: outcome confirmed (failure_class none) or failed (with its failure class).",
    ["outcome", "failure_class"],
)
ORDER_RETRIES = Counter(
    "oe_order_retries",
    "Failed attempts that were scheduled for a retry (RetryScheduled recorded),"
    " by the failure class of the attempt.",
    ["failure_class"],
)
ORDER_STAGE_SECONDS = Histogram(
    "oe_order_stage_seconds",
    "Time between two recorded events of an order, from their recorded_at,"
    " observed by the handler that records the later one. accepted_to_routed:"
    " OrderAccepted to the first RouteSelected; routed_to_submitted: RouteSelected"
    " to TransactionSubmitted of the same attempt; submitted_to_confirmed:"
    " TransactionSubmitted to SwapConfirmed; accepted_to_terminal: OrderAccepted"
    " to SwapConfirmed or OrderFailed.",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)

# --- relay and projections ------------------------------------------------------------

STORE_HEAD = Gauge(
    "oe_store_head_position",
    "Global position of the last event in the store (sampled every second).",
)
RELAY_LAG = Gauge(
    "oe_relay_lag_events",
    "Events recorded but not yet published: store head position minus the relay"
    " checkpoint (sampled every second; the same in every process).",
)
RELAY_PUBLISHED = Counter(
    "oe_relay_events_published",
    "Events this process's relay published and the broker confirmed.",
)
RELAY_LEADER = Gauge(
    "oe_relay_leader",
    "1 when this process holds the relay lock and publishes, else 0.",
)
LEADER_LOCK_TRIES = Counter(
    "oe_leader_lock_tries",
    "Tries for a leader lock (relay, projections, the chain's lander): held, or"
    " refused because another process holds it. A live standby's refused count"
    " grows about once a second.",
    ["lock", "outcome"],
)
PROJECTION_LAG = Gauge(
    "oe_projection_lag_events",
    "Events a store follower (read model, in-flight projection) has not applied:"
    " store head position minus its checkpoint (sampled every second).",
    ["projection"],
)

# --- consumers ----------------------------------------------------------------------

CONSUMER_MESSAGES = Counter(
    "oe_consumer_messages",
    "Deliveries settled by a consumer: ack (handled), requeue (infrastructure"
    " still failing after in-place retries) or parked (poison, dead-lettered).",
    ["consumer", "event_type", "outcome"],
)
CONSUMER_HANDLE_SECONDS = Histogram(
    "oe_consumer_handle_seconds",
    "Time from receiving a delivery to settling it, in-place retries included.",
    ["consumer", "event_type"],
    buckets=HANDLER_BUCKETS,
)
CONSUMER_REDELIVERIES = Counter(
    "oe_consumer_redeliveries",
    "Deliveries the broker flagged as redelivered (a previous delivery was"
    " requeued or its consumer went away before acking).",
    ["consumer"],
)
CONSUMER_PARKED = Counter(
    "oe_consumer_parked",
    "Deliveries rejected to the parking queue, by reason: undecodable body or"
    " handler_error.",
    ["consumer", "reason"],
)
EVENTS_PASSED_OVER = Counter(
    "oe_events_passed_over",
    "Events a reader that only shows or projects them passed over: newer (a type"
    " or field a newer release recorded) or unreadable (it does not parse at all;"
    " each one is logged as an error).",
    ["reader", "reason"],
)
HUB_LAG = Gauge(
    "oe_notifier_hub_lag_events",
    "Store head position minus the last position the notifier's hub has put in"
    " order (sampled every second): what no subscriber has been sent yet.",
)
QUEUE_MESSAGES = Gauge(
    "oe_consumer_queue_messages",
    "Messages ready in a consumed queue (passive declare, sampled every 5 s).",
    ["queue"],
)
QUEUE_CONSUMERS = Gauge(
    "oe_consumer_queue_consumers",
    "Consumers attached to a consumed queue, all replicas (passive declare,"
    " sampled every 5 s).",
    ["queue"],
)

# --- WebSocket ----------------------------------------------------------------------

WEBSOCKET_CONNECTIONS = Gauge(
    "oe_websocket_connections",
    "Open WebSocket connections: order (one order's stream) or firehose.",
    ["kind"],
)
WEBSOCKET_FRAMES = Counter(
    "oe_websocket_frames_sent",
    "Frames sent to WebSocket subscribers (status frames and error frames).",
    ["kind"],
)

# Series that exist from the start, so dashboards and rate() see zeros, not gaps.
ORDERS_COMPLETED.labels("confirmed", NO_FAILURE)
for _failure in FailureClass:
    ORDERS_COMPLETED.labels("failed", _failure.value)
    ORDER_RETRIES.labels(_failure.value)
for _stage in STAGES:
    ORDER_STAGE_SECONDS.labels(_stage)
for _kind in WEBSOCKET_KINDS:
    WEBSOCKET_CONNECTIONS.labels(_kind)
    WEBSOCKET_FRAMES.labels(_kind)


def _seconds(later: datetime, earlier: datetime) -> float:
    # Two clocks (the database's recorded_at and this host's): never negative.
    return max(0.0, (later - earlier).total_seconds())


def observe_recorded(
    recorded_at: Mapping[str, datetime],
    recorded: Sequence[OrderEvent],
    now: datetime,
) -> None:
    """Count outcomes and observe stage latencies for events just appended.

    ``recorded_at`` says when each event type was last recorded in the stream the
    decision was made on, ``recorded`` lists the events the append recorded;
    ``now`` stands in for their ``recorded_at``, which the append does not return
    (no extra round trip).
    """
    accepted = recorded_at.get("OrderAccepted")
    for event in recorded:
        match event:
            case RouteSelected() if accepted is not None and event.attempt == 1:
                ORDER_STAGE_SECONDS.labels("accepted_to_routed").observe(
                    _seconds(now, accepted)
                )
            case TransactionSubmitted() if routed := recorded_at.get("RouteSelected"):
                ORDER_STAGE_SECONDS.labels("routed_to_submitted").observe(
                    _seconds(now, routed)
                )
            case SwapConfirmed():
                ORDERS_COMPLETED.labels("confirmed", NO_FAILURE).inc()
                if (submitted := recorded_at.get("TransactionSubmitted")) is not None:
                    ORDER_STAGE_SECONDS.labels("submitted_to_confirmed").observe(
                        _seconds(now, submitted)
                    )
            case OrderFailed():
                ORDERS_COMPLETED.labels("failed", event.failure.value).inc()
            case RetryScheduled():
                ORDER_RETRIES.labels(event.failure.value).inc()
        if accepted is not None and isinstance(event, SwapConfirmed | OrderFailed):
            ORDER_STAGE_SECONDS.labels("accepted_to_terminal").observe(
                _seconds(now, accepted)
            )


def record_delivery(
    consumer: str,
    event_type: str,
    outcome: str,
    seconds: float,
    *,
    redelivered: bool,
    parked_reason: str | None = None,
) -> None:
    """Account for one settled delivery (called once per delivery by ``settle``)."""
    CONSUMER_MESSAGES.labels(consumer, event_type, outcome).inc()
    CONSUMER_HANDLE_SECONDS.labels(consumer, event_type).observe(seconds)
    if redelivered:
        CONSUMER_REDELIVERIES.labels(consumer).inc()
    if parked_reason is not None:
        CONSUMER_PARKED.labels(consumer, parked_reason).inc()
