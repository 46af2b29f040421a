"""The order detail shows what the order's current or final attempt did."""

from uuid import uuid4

from gateway.api import order_public
from shared.domain.envelope import NewEvent
from shared.domain.events import OrderEvent
from shared.domain.order import replay
from shared.domain.quotes import Venue
from shared.eventstore.memory import InMemoryEventStore
from shared.eventstore.port import NO_STREAM
from tests.unit.order_events import (
    failed_routing_after_a_sent_attempt,
    happy_path,
    requoted_then_confirmed,
)


async def detail(events: list[OrderEvent]) -> dict[str, object]:
    store = InMemoryEventStore()
    order_id = uuid4()
    await store.append(
        order_id,
        [NewEvent(event_id=uuid4(), event=e, correlation_id=order_id) for e in events],
        NO_STREAM,
    )
    state = replay(events)
    assert state is not None
    public = order_public(await store.read_stream(order_id), state)
    shown: dict[str, object] = public.model_dump(mode="json", by_alias=True)
    return shown


async def test_a_confirmed_order_shows_its_route_and_transaction() -> None:
    shown = await detail(happy_path())

    assert shown["routePlan"] is not None
    assert [q["venue"] for q in shown["quotes"]] == [Venue.METEORA.value]  # type: ignore[attr-defined]
    assert shown["txHash"] == "sig1"


async def test_a_requoted_order_shows_the_plan_it_swapped_on() -> None:
    shown = await detail(requoted_then_confirmed())

    plan = shown["routePlan"]
    assert isinstance(plan, dict)
    assert [leg["venue"] for leg in plan["legs"]] == [Venue.RAYDIUM.value]


async def test_after_a_retry_the_earlier_attempts_route_is_not_shown_as_current() -> (
    None
):
    """Attempt 2 got no quote: no plan, no quotes, no transaction; attempt 1's
    failure and attempt 2's are both listed."""
    shown = await detail(failed_routing_after_a_sent_attempt())

    assert shown["status"] == "failed"
    assert shown["attempt"] == 2
    assert (shown["routePlan"], shown["quotes"], shown["txHash"]) == (None, [], None)
    assert [f["attempt"] for f in shown["failures"]] == [1, 2]  # type: ignore[attr-defined]
