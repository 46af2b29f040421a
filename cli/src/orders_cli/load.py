"""Load generation: N orders with bounded concurrency, each followed to its end.

``summarize`` and ``percentile`` are pure; ``run_load`` does the I/O.
"""

import asyncio
import dataclasses
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orders_cli.client import ApiError, OrdersClient, pause_after

CONFIRMED = "confirmed"
FAILED = "failed"
TIMED_OUT = "timed-out"
REJECTED = "rejected"  # the submit itself was refused or did not reach the API
HTTP_UNAVAILABLE = 503


@dataclass(frozen=True)
class OrderOutcome:
    """What happened to one order of a load run, seen from the client.

    ``latency`` is seconds from just before the first POST to the terminal frame's
    arrival (``None`` when the order never reached a terminal status);
    ``waited_for_capacity`` counts the 503 answers it waited out before it was
    accepted.
    """

    order_id: str | None
    status: str
    latency: float | None = None
    reason: str | None = None
    http_status: int | None = None
    waited_for_capacity: int = 0


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) with linear interpolation between ranks.

    Same definition as numpy's default (``linear``); ``None`` for no values.
    """
    if not values:
        return None
    if not 0 <= q <= 100:  # noqa: PLR2004 - percent bounds
        raise ValueError(f"percentile must be within 0..100, got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class LoadSummary:
    count: int
    concurrency: int
    elapsed: float
    confirmed: int
    failed: int
    timed_out: int
    rejected: int
    waited_for_capacity: int
    latency: Mapping[str, float | None]
    failure_reasons: Mapping[str, int]
    outcomes: Sequence[OrderOutcome] = field(default_factory=tuple)

    @property
    def terminal(self) -> int:
        return self.confirmed + self.failed

    @property
    def orders_per_second(self) -> float:
        return self.terminal / self.elapsed if self.elapsed > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "concurrency": self.concurrency,
            "elapsedSeconds": round(self.elapsed, 3),
            "confirmed": self.confirmed,
            "failed": self.failed,
            "timedOut": self.timed_out,
            "rejected": self.rejected,
            "waitedForCapacity": self.waited_for_capacity,
            "terminal": self.terminal,
            "ordersPerSecond": round(self.orders_per_second, 3),
            "latencyMs": {
                name: None if value is None else round(value * 1000, 1)
                for name, value in self.latency.items()
            },
            "failureReasons": dict(self.failure_reasons),
            "orders": [
                {
                    "orderId": o.order_id,
                    "status": o.status,
                    "latencyMs": None
                    if o.latency is None
                    else round(o.latency * 1000, 1),
                    "reason": o.reason,
                }
                for o in self.outcomes
            ],
        }


def summarize(
    outcomes: Sequence[OrderOutcome], *, elapsed: float, concurrency: int
) -> LoadSummary:
    """Counts, submit→confirmed latency percentiles and failure reasons by count.

    Reasons of failed, timed-out and rejected orders are all counted, most common
    first, each prefixed with what happened (``failed: …``).
    """
    by_status = Counter(o.status for o in outcomes)
    confirmed = [o.latency for o in outcomes if o.status == CONFIRMED and o.latency]
    reasons = Counter(
        f"{o.status}: {o.reason or 'no reason given'}"
        for o in outcomes
        if o.status != CONFIRMED
    )
    return LoadSummary(
        count=len(outcomes),
        concurrency=concurrency,
        elapsed=elapsed,
        confirmed=by_status[CONFIRMED],
        failed=by_status[FAILED],
        timed_out=by_status[TIMED_OUT],
        rejected=by_status[REJECTED],
        waited_for_capacity=sum(1 for o in outcomes if o.waited_for_capacity),
        latency={
            "min": min(confirmed, default=None),
            "p50": percentile(confirmed, 50),
            "p95": percentile(confirmed, 95),
            "p99": percentile(confirmed, 99),
            "max": max(confirmed, default=None),
            "mean": sum(confirmed) / len(confirmed) if confirmed else None,
        },
        failure_reasons=dict(reasons.most_common()),
        outcomes=tuple(outcomes),
    )


async def one_order(
    client: OrdersClient, body: Mapping[str, Any], *, give_up_after: float
) -> OrderOutcome:
    """Submit one order and follow it over its WebSocket until it ends.

    A 503 with ``Retry-After`` (the engine at capacity, or its store briefly
    away) asks for the same order again after the wait, for as long as
    ``give_up_after`` allows; so does an API that was not reached or whose answer
    was lost, after a back-off. At capacity nothing was recorded; a store outage
    may have struck after the order was recorded, so ``body`` should carry a
    ``clientOrderId`` (``run_load`` gives each order one): the repeat then
    returns the order rather than placing a second one.
    """
    started = time.monotonic()
    deadline = started + give_up_after
    waits = tries = 0
    while True:
        try:
            receipt = await client.submit(body)
            break
        except ApiError as error:
            tries += 1
            if error.status is None:
                # The API was not reached, or its answer was lost: the order may be
                # recorded, and its clientOrderId asks for it again, never twice.
                wait: float | None = pause_after(tries)
            else:
                wait = error.retry_after if error.status == HTTP_UNAVAILABLE else None
            if wait is None or time.monotonic() + wait > deadline:
                return OrderOutcome(
                    None,
                    REJECTED,
                    reason=error.message,
                    http_status=error.status,
                    waited_for_capacity=waits,
                )
            if error.status is not None:
                waits += 1
            await asyncio.sleep(wait)
    outcome = await _follow(
        client, str(receipt["orderId"]), started=started, deadline=deadline
    )
    return dataclasses.replace(outcome, waited_for_capacity=waits)


async def _follow(
    client: OrdersClient, order_id: str, *, started: float, deadline: float
) -> OrderOutcome:
    last: Mapping[str, Any] = {}
    try:
        async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
            async for frame in client.follow(order_id):
                last = frame
    except TimeoutError:
        return OrderOutcome(
            order_id,
            TIMED_OUT,
            reason=f"still {last.get('status', 'pending')} after"
            f" {deadline - started:g}s",
        )
    except ApiError as error:
        return OrderOutcome(order_id, TIMED_OUT, reason=error.message)
    latency = time.monotonic() - started
    if last.get("status") == CONFIRMED:
        return OrderOutcome(order_id, CONFIRMED, latency)
    return OrderOutcome(
        order_id, FAILED, latency, reason=f"{last.get('failure')}: {last.get('reason')}"
    )


async def run_load(
    client: OrdersClient,
    body: Callable[[int], Mapping[str, Any]],
    *,
    count: int,
    concurrency: int,
    give_up_after: float,
    on_done: Callable[[OrderOutcome], None] | None = None,
) -> LoadSummary:
    """Run ``count`` orders, at most ``concurrency`` in flight (submit to terminal).

    Each order gets a ``clientOrderId`` unique to this run (unless ``body`` gives
    one), so resubmitting after a 503 can never place it twice.
    """
    gate = asyncio.Semaphore(concurrency)
    await client.ws_url()  # resolve once, not once per order
    run_id = uuid.uuid4().hex[:12]

    async def run(index: int) -> OrderOutcome:
        order = {"clientOrderId": f"load-{run_id}-{index}", **body(index)}
        async with gate:
            result = await one_order(client, order, give_up_after=give_up_after)
        if on_done is not None:
            on_done(result)
        return result

    started = time.monotonic()
    outcomes = await asyncio.gather(*(run(i) for i in range(count)))
    return summarize(
        outcomes, elapsed=time.monotonic() - started, concurrency=concurrency
    )
