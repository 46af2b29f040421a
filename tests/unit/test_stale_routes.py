"""An executor re-quotes a route that went stale before it signs anything.

A split that no venue can fill alone has no whole-order quote behind it, so the
age of its ``RouteSelected`` record is what makes it stale. The transaction must
then carry the fresh plan, and the confirmation must report the fresh plan's
quoted amounts.
"""

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

from executor.handlers import ExecuteOrders
from shared.chain.port import Blockhash, SignatureStatus, TxLanded, TxUnknown
from shared.chain.transaction import decode_transaction
from shared.domain import dlmm
from shared.domain.envelope import CauseRef, EventEnvelope, NewEvent
from shared.domain.events import (
    OrderAccepted,
    RouteSelected,
    SwapConfirmed,
    TransactionSubmitted,
)
from shared.domain.order import decide_route, decide_start_routing
from shared.domain.pairs import SUPPORTED_PAIRS, Pair, Side
from shared.domain.pools import CpPool, DlmmPool
from shared.domain.quotes import RouteLeg, RoutePlan, Venue
from shared.domain.routing import plan_route
from shared.eventstore.memory import InMemoryEventStore
from shared.eventstore.orders import Orders
from shared.eventstore.port import NO_STREAM
from shared.venues.port import PoolRead
from shared.venues.quoting import Quoting
from tests.unit.fake_chain import Ticks, executing, ticking

SOL, USDC = 10**9, 10**6
PAIR = SUPPORTED_PAIRS["SOL-USDC"]
VALIDITY = timedelta(seconds=2)
BUY = Decimal(120)  # more SOL than either pool below holds on its own side


def pools(price: float) -> dict[Venue, CpPool | DlmmPool]:
    bin_step = 4
    active = dlmm.bin_id_for_price(price * USDC / SOL, bin_step)
    book = DlmmPool(
        Venue.METEORA,
        PAIR,
        dlmm.spread_liquidity(
            params=dlmm.FeeParameters(bin_step=bin_step),
            active_id=active,
            total_x=80 * SOL,
            total_y=1_000 * USDC,
            half_width=60,
            sigma=25,
        ),
        0,
    )
    raydium = CpPool(
        Venue.RAYDIUM, PAIR, 100 * SOL, int(100 * price * USDC), 0, 25, 10_000
    )
    return {Venue.RAYDIUM: raydium, Venue.METEORA: book}


class Venues:
    """Each venue's pool as it is now; counts how often it was asked."""

    def __init__(self, price: float) -> None:
        self.now = pools(price)
        self.asked = 0

    def client(self, venue: Venue) -> "PoolOf":
        return PoolOf(self, venue)


class PoolOf:
    def __init__(self, venues: Venues, venue: Venue) -> None:
        self._venues = venues
        self.venue = venue

    async def pool(self, pair: Pair) -> PoolRead:
        assert pair == PAIR
        self._venues.asked += 1
        return PoolRead(self._venues.now[self.venue], datetime.now(UTC))


class LandingChain:
    """Lands every buy it is sent, at exactly the amounts it was signed for."""

    def __init__(self) -> None:
        self.sent: dict[str, TxLanded] = {}

    async def latest_blockhash(self) -> Blockhash:
        return Blockhash(blockhash="1" * 32, last_valid_block_height=150)

    async def send_transaction(self, encoded: str) -> str:
        signature, instruction = decode_transaction(encoded)
        legs = tuple(
            RouteLeg(
                venue=leg.venue,
                bps=leg.bps,
                in_amount=Decimal(leg.quoted_raw) / USDC,
                out_amount=Decimal(leg.amount_raw) / SOL,
            )
            for leg in instruction.legs
        )
        self.sent[signature] = TxLanded(
            slot=7,
            ok=True,
            error=None,
            amount_in=sum((leg.in_amount for leg in legs), Decimal(0)),
            amount_out=sum((leg.out_amount for leg in legs), Decimal(0)),
            legs=legs,
        )
        return signature

    async def signature_statuses(
        self, signatures: Sequence[str]
    ) -> list[SignatureStatus]:
        return [self.sent.get(s, TxUnknown()) for s in signatures]

    async def block_height(self) -> int:
        return 1

    def landings(self) -> contextlib.AbstractAsyncContextManager[Ticks]:
        return ticking()


async def routed_split(
    orders: Orders, store: InMemoryEventStore, *, routed_at: datetime
) -> tuple[UUID, RoutePlan, EventEnvelope]:
    """A split recorded at ``routed_at``, and its ``RouteSelected`` as delivered."""
    spec = OrderAccepted(
        order_id=uuid4(),
        order_type="market",
        token_pair="SOL-USDC",
        side="buy",
        amount=BUY,
        slippage_bps=50,
    )
    order_id = spec.order_id
    await store.append(
        order_id,
        [NewEvent(event_id=uuid4(), event=spec, correlation_id=order_id)],
        NO_STREAM,
    )
    quotes, plan = plan_route(
        pools(160.0),
        pair=PAIR,
        side=Side.BUY,
        amount=BUY,
        slippage_bps=50,
        read_at=dict.fromkeys(Venue, routed_at),
        validity=VALIDITY,
    )
    assert quotes == ()
    assert len(plan.legs) == 2
    cause = CauseRef(event_id=uuid4(), correlation_id=order_id)
    await orders.decide(order_id, decide_start_routing, cause=cause)
    await orders.decide(
        order_id,
        lambda s: decide_route(s, attempt=1, quotes=quotes, plan=plan),
        cause=cause,
    )
    history = await orders.history(order_id)
    assert isinstance(history[-1].event, RouteSelected)
    return order_id, plan, history[-1].model_copy(update={"recorded_at": routed_at})


def executor(
    venues: Venues,
) -> contextlib.AbstractAsyncContextManager[
    tuple[ExecuteOrders, Orders, InMemoryEventStore]
]:
    quoting = Quoting(
        venues={venue: venues.client(venue) for venue in Venue},
        timeout=timedelta(seconds=5),
        validity=VALIDITY,
        slot_ms=400,
    )
    return executing(LandingChain(), quoting)


async def outcome(
    orders: Orders, order_id: UUID
) -> tuple[TransactionSubmitted, SwapConfirmed]:
    events = [envelope.event for envelope in await orders.history(order_id)]
    [submitted] = [e for e in events if isinstance(e, TransactionSubmitted)]
    [confirmed] = [e for e in events if isinstance(e, SwapConfirmed)]
    return submitted, confirmed


async def test_a_stale_split_is_requoted_and_confirmed_against_the_fresh_plan() -> None:
    venues = Venues(price=160.1)
    async with executor(venues) as (execute, orders, store):
        order_id, stale, routed = await routed_split(
            orders, store, routed_at=datetime.now(UTC) - 10 * VALIDITY
        )

        await asyncio.wait_for(execute.on_route_selected(routed), timeout=5)

        submitted, confirmed = await outcome(orders, order_id)
    assert venues.asked == len(Venue)
    fresh = submitted.plan
    assert fresh is not None, "the re-quote was not recorded"
    assert len(fresh.legs) == 2
    assert fresh.in_amount > stale.in_amount  # the price moved up since routing
    assert (confirmed.quoted_amount_in, confirmed.quoted_amount_out) == (
        fresh.in_amount,
        fresh.out_amount,
    )


async def test_a_split_still_fresh_is_built_as_routed() -> None:
    venues = Venues(price=160.1)
    async with executor(venues) as (execute, orders, store):
        order_id, routed_plan, routed = await routed_split(
            orders, store, routed_at=datetime.now(UTC)
        )

        await asyncio.wait_for(execute.on_route_selected(routed), timeout=5)

        submitted, confirmed = await outcome(orders, order_id)
    assert venues.asked == 0
    assert submitted.plan is None
    assert (confirmed.quoted_amount_in, confirmed.quoted_amount_out) == (
        routed_plan.in_amount,
        routed_plan.out_amount,
    )
