"""Orders.decide when two writers take the same step at once.

Two executors can hold the same ``RouteSelected`` (a broker connection lost while
the first still works on it). Each signs its own transaction; one records it.
The other must send the recorded one, never its own: two different transactions
for one attempt could both land.
"""

from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from prometheus_client import REGISTRY

from shared.domain.envelope import CauseRef, NewEvent
from shared.domain.order import (
    Phase,
    decide_attempt_failed,
    decide_confirm,
    decide_start_routing,
    decide_submit,
)
from shared.domain.retry import FailureClass, RetryPolicy
from shared.eventstore.memory import InMemoryEventStore
from shared.eventstore.orders import KnownOrder, Orders
from shared.eventstore.port import NO_STREAM
from tests.unit.order_events import accepted, plan, route_a_new_order


async def routed_order() -> tuple[Orders, UUID, KnownOrder, CauseRef]:
    store = InMemoryEventStore()
    orders = Orders(store)
    order_id, cause = await route_a_new_order(orders, store)
    known = await orders.read(order_id)
    assert known is not None
    return orders, order_id, known, cause


def submit(signature: str) -> Any:
    def decide(state: Any) -> Any:
        return decide_submit(
            state,
            attempt=1,
            signature=signature,
            blockhash=f"hash-of-{signature}",
            last_valid_block_height=150,
            signed_transaction=f"bytes-of-{signature}",
        )

    return decide


async def test_the_writer_that_loses_the_race_gets_the_recorded_transaction() -> None:
    orders, order_id, known, cause = await routed_order()
    # Both executors read the order as routed and each signs its own transaction.
    _, recorded = await orders.decide(
        order_id, submit("sig-A"), cause=cause, known=known
    )

    second, recorded_by_second = await orders.decide(
        order_id, submit("sig-B"), cause=cause, known=known
    )

    assert [e.type for e in recorded] == ["TransactionSubmitted"]
    assert recorded_by_second == []
    assert second.state.phase is Phase.SUBMITTED
    assert second.state.transaction is not None
    assert second.state.transaction.signature == "sig-A"
    assert second.state.transaction.signed_transaction == "bytes-of-sig-A"
    stream = await orders.history(order_id)
    assert [e.type for e in stream].count("TransactionSubmitted") == 1


async def test_an_outcome_raced_by_two_replicas_is_counted_once() -> None:
    orders, order_id, known, cause = await routed_order()
    failure = FailureClass.QUOTE_EXPIRED
    labels = {"outcome": "failed", "failure_class": failure.value}

    def count() -> float:
        return REGISTRY.get_sample_value("oe_orders_completed_total", labels) or 0.0

    def fail(reason: str) -> Any:
        def decide(state: Any) -> Any:
            return decide_attempt_failed(
                state,
                attempt=1,
                phase=Phase.ROUTED,
                failure=failure,
                reason=reason,
                policy=RetryPolicy(max_attempts=1),
            )

        return decide

    before = count()
    await orders.decide(order_id, fail("seen by A"), cause=cause, known=known)
    order, recorded = await orders.decide(
        order_id, fail("seen by B"), cause=cause, known=known
    )

    assert recorded == []
    assert order.state.failure is not None
    assert order.state.failure.reason.startswith("seen by A")
    assert count() == before + 1


class CountingStore(InMemoryEventStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def read_stream(self, stream: UUID, after_version: int = 0) -> Any:
        self.reads += 1
        return await super().read_stream(stream, after_version)


async def accepted_stream() -> tuple[CountingStore, Orders, KnownOrder, CauseRef]:
    store = CountingStore()
    order = accepted()
    await store.append(
        order.order_id,
        [NewEvent(event_id=uuid4(), event=order, correlation_id=order.order_id)],
        NO_STREAM,
    )
    first = KnownOrder.of(await store.read_stream(order.order_id))
    assert first is not None
    store.reads = 0
    return (
        store,
        Orders(store),
        first,
        CauseRef(event_id=uuid4(), correlation_id=uuid4()),
    )


async def test_deciding_on_the_first_event_reads_nothing() -> None:
    """The router starts routing from the OrderAccepted message alone."""
    store, orders, first, cause = await accepted_stream()

    order, recorded = await orders.decide(
        first.state.order_id, decide_start_routing, cause=cause, known=first
    )

    assert [e.type for e in recorded] == ["RoutingStarted"]
    assert order.state.phase is Phase.ROUTING
    assert order.state.version == 2
    assert store.reads == 0


async def test_a_stale_first_event_reloads_and_records_nothing_twice() -> None:
    """A redelivered OrderAccepted, after routing began: the append's expected
    version refuses the stale copy, and the reload finds the step taken."""
    store, orders, first, cause = await accepted_stream()
    await orders.decide(first.state.order_id, decide_start_routing, cause=cause)

    order, recorded = await orders.decide(
        first.state.order_id, decide_start_routing, cause=cause, known=first
    )

    assert recorded == []
    assert order.state.phase is Phase.ROUTING
    assert store.reads >= 1
    history = await orders.history(first.state.order_id)
    assert [e.type for e in history] == ["OrderAccepted", "RoutingStarted"]


async def test_a_failure_raced_by_another_replicas_send_leaves_the_send_to_land() -> (
    None
):
    """A build failure seen on the routed order, after another executor sent its
    transaction, records nothing: the order stays submitted and its swap confirms."""
    orders, order_id, known, cause = await routed_order()
    await orders.decide(order_id, submit("sig-A"), cause=cause, known=known)

    def stale_failure(state: Any) -> Any:
        return decide_attempt_failed(
            state,
            attempt=1,
            phase=known.state.phase,
            failure=FailureClass.NETWORK_ERROR,
            reason="no blockhash",
            policy=RetryPolicy(max_attempts=3),
        )

    after, recorded = await orders.decide(
        order_id, stale_failure, cause=cause, known=known
    )
    assert recorded == []
    assert after.state.phase is Phase.SUBMITTED

    _, confirmed = await orders.decide(
        order_id,
        lambda s: decide_confirm(
            s,
            signature="sig-A",
            slot=7,
            amount_in=Decimal(1),
            amount_out=Decimal(160),
            legs=plan().legs,
        ),
        cause=cause,
    )
    assert [e.type for e in confirmed] == ["SwapConfirmed"]
    stream = await orders.history(order_id)
    assert [e.type for e in stream].count("RetryScheduled") == 0
