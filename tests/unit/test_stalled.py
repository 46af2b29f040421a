"""The stalled-orders watch: a gauge per in-flight status, each order named once."""

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence

import pytest
from prometheus_client import REGISTRY

from gateway.stalled import Stalled, StalledWatch
from shared.domain.events import IN_FLIGHT_STATUSES, OrderStatus

A, B, C = (uuid.uuid4() for _ in range(3))


class Found:
    """What the read model answers, one look at a time."""

    def __init__(self, *looks: Sequence[Stalled]) -> None:
        self.looks = list(looks)
        self.asked: list[float] = []

    async def __call__(self, after_s: float) -> Sequence[Stalled]:
        self.asked.append(after_s)
        return self.looks.pop(0)


def gauge(status: OrderStatus) -> float | None:
    return REGISTRY.get_sample_value("oe_orders_stalled", {"status": status.value})


def checked_at() -> float | None:
    return REGISTRY.get_sample_value("oe_orders_stalled_checked_timestamp_seconds")


def named(caplog: pytest.LogCaptureFixture) -> list[list[str]]:
    ids = [
        r.__dict__["order_ids"]
        for r in caplog.records
        if r.getMessage() == "orders stalled"
    ]
    caplog.clear()
    return ids


async def test_the_gauge_counts_stalled_orders_by_status_and_zeroes_the_rest() -> None:
    find = Found([Stalled(OrderStatus.PENDING, 12, [A, B], 130.0)], [])
    watch = StalledWatch(find, after_s=120)

    await watch.check()
    assert find.asked == [120]
    assert {s: gauge(s) for s in IN_FLIGHT_STATUSES} == {
        s: (12.0 if s is OrderStatus.PENDING else 0.0) for s in IN_FLIGHT_STATUSES
    }

    await watch.check()
    assert {gauge(s) for s in IN_FLIGHT_STATUSES} == {0.0}


async def test_a_replica_that_does_not_project_counts_nothing() -> None:
    find = Found()  # any look would fail: there is none to give
    leading = False
    watch = StalledWatch(find, after_s=120, leading=lambda: leading)

    await watch.check()

    assert find.asked == []
    assert {gauge(s) for s in IN_FLIGHT_STATUSES} == {0.0}


async def test_each_stalled_order_is_named_once_while_it_stays_stalled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.stalled")
    watch = StalledWatch(
        Found(
            [Stalled(OrderStatus.ROUTING, 2, [A, B], 200.0)],
            [Stalled(OrderStatus.ROUTING, 2, [A, B], 205.0)],
            [Stalled(OrderStatus.ROUTING, 3, [A, B, C], 210.0)],
            [Stalled(OrderStatus.ROUTING, 1, [C], 215.0)],
            [Stalled(OrderStatus.SUBMITTED, 2, [A, C], 130.0)],
        ),
        after_s=120,
    )

    await watch.check()
    assert named(caplog) == [[str(A), str(B)]]
    await watch.check()
    assert named(caplog) == []
    await watch.check()
    assert named(caplog) == [[str(C)]]
    await watch.check()  # A and B moved on
    assert named(caplog) == []
    await watch.check()  # A stalled again, later in its life
    assert named(caplog) == [[str(A)]]


async def test_a_failed_look_is_logged_once_and_the_watch_goes_on(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.stalled.CHECK_EVERY_S", 0.001)
    looks: list[Sequence[Stalled] | Exception] = [
        OSError("store down"),
        OSError("store down"),
        [Stalled(OrderStatus.BUILDING, 7, [A], 300.0)],
    ]

    async def find(after_s: float) -> Sequence[Stalled]:
        look = looks.pop(0) if looks else []
        if isinstance(look, Exception):
            raise look
        return look

    watch = asyncio.create_task(StalledWatch(find, after_s=1).run())
    try:
        async with asyncio.timeout(5):
            while gauge(OrderStatus.BUILDING) != 7.0:
                await asyncio.sleep(0.001)
    finally:
        watch.cancel()
    failures = [
        r for r in caplog.records if r.getMessage() == "cannot look for stalled orders"
    ]
    assert len(failures) == 1


async def test_a_failed_look_keeps_the_counts_and_the_time_they_were_taken() -> None:
    found: list[Sequence[Stalled] | Exception] = [
        [Stalled(OrderStatus.SUBMITTED, 3, [A], 300.0)],
        OSError("store down"),
    ]

    async def find(after_s: float) -> Sequence[Stalled]:
        look = found.pop(0)
        if isinstance(look, Exception):
            raise look
        return look

    watch = StalledWatch(find, after_s=120)
    before = time.time()
    await watch.check()
    checked = checked_at()
    assert checked is not None
    assert before <= checked <= time.time()

    with pytest.raises(OSError, match="store down"):
        await watch.check()
    assert gauge(OrderStatus.SUBMITTED) == 3.0
    assert checked_at() == checked
