"""The executor's watch of a sent transaction, against a node that misbehaves.

What a user sees is the order's outcome and its reason: a swap the chain landed
is confirmed even while the node refuses every send, and an attempt the chain
expired says so, not that its bytes never reached the chain.
"""

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from shared.chain.port import (
    Blockhash,
    ChainUnavailableError,
    SignatureStatus,
    TxExpired,
    TxLanded,
    TxUnknown,
)
from shared.domain.envelope import EventEnvelope
from shared.domain.events import RetryScheduled, RouteSelected, SwapConfirmed
from shared.domain.retry import FailureClass
from shared.eventstore.memory import InMemoryEventStore
from shared.eventstore.orders import Orders
from shared.venues.quoting import Quoting
from tests.unit.fake_chain import Ticks, executing, ticking
from tests.unit.order_events import plan, route_a_new_order

LAST_VALID = 150
LANDED = TxLanded(
    slot=7,
    ok=True,
    error=None,
    amount_in=Decimal(10),
    amount_out=Decimal(1630),
    legs=plan().legs,
)


class Node:
    """An RPC node: ``statuses`` answers the n-th status read of a signature."""

    def __init__(
        self,
        *,
        sends_fail: bool,
        statuses: Callable[[int], SignatureStatus],
        height: int,
    ) -> None:
        self._sends_fail = sends_fail
        self._statuses = statuses
        self._height = height
        self.reads = 0

    async def latest_blockhash(self) -> Blockhash:
        return Blockhash(blockhash="1" * 32, last_valid_block_height=LAST_VALID)

    async def send_transaction(self, encoded: str) -> str:
        if self._sends_fail:
            raise ChainUnavailableError("sendTransaction refused")
        return encoded

    async def signature_statuses(
        self, signatures: Sequence[str]
    ) -> list[SignatureStatus]:
        self.reads += 1
        return [self._statuses(self.reads) for _ in signatures]

    async def block_height(self) -> int:
        return self._height

    def landings(self) -> contextlib.AbstractAsyncContextManager[Ticks]:
        return ticking()


async def routed(orders: Orders, store: InMemoryEventStore) -> EventEnvelope:
    """A fresh single-venue route for a new order, as the executor receives it."""
    order_id, _ = await route_a_new_order(orders, store)
    history = await orders.history(order_id)
    assert isinstance(history[-1].event, RouteSelected)
    return history[-1].model_copy(update={"recorded_at": datetime.now(UTC)})


async def executed(node: Node) -> list[object]:
    """The order's events once the executor recorded the attempt's outcome."""
    quoting = Quoting(
        venues={},
        timeout=timedelta(seconds=1),
        validity=timedelta(seconds=2),
        slot_ms=400,
    )
    async with executing(node, quoting) as (execute, orders, store):
        cause = await routed(orders, store)
        await asyncio.wait_for(execute.on_route_selected(cause), timeout=5)
        return [envelope.event for envelope in await orders.history(cause.order_id)]


async def test_a_landed_swap_is_confirmed_while_the_node_refuses_every_send() -> None:
    node = Node(sends_fail=True, statuses=lambda _: LANDED, height=1)

    events = await executed(node)

    [confirmed] = [e for e in events if isinstance(e, SwapConfirmed)]
    assert confirmed.amount_out == LANDED.amount_out


async def test_bytes_the_chain_expired_are_reported_expired_not_never_received() -> (
    None
):
    """The chain did not know the signature at first, then had it and expired
    it: the bytes did reach the chain, and the reason must not say otherwise."""
    node = Node(
        sends_fail=False,
        statuses=lambda read: TxUnknown() if read == 1 else TxExpired(),
        height=LAST_VALID + 1,
    )

    events = await executed(node)

    [retry] = [e for e in events if isinstance(e, RetryScheduled)]
    assert retry.failure is FailureClass.BLOCKHASH_EXPIRED
    assert retry.reason == f"not landed before block height {LAST_VALID}"
