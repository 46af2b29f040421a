"""The order's events: past-tense facts, one discriminated union, one status each."""

from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field

from shared.domain.model import FixedDecimal, Message
from shared.domain.pairs import Side
from shared.domain.quotes import RouteLeg, RoutePlan, VenueQuote
from shared.domain.retry import FailureClass


class OrderStatus(StrEnum):
    """The statuses a client sees on the WebSocket and in the API."""

    PENDING = "pending"
    ROUTING = "routing"
    BUILDING = "building"
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    FAILED = "failed"


TERMINAL_STATUSES = frozenset({OrderStatus.CONFIRMED, OrderStatus.FAILED})
IN_FLIGHT_STATUSES = tuple(s for s in OrderStatus if s not in TERMINAL_STATUSES)


class OrderType(StrEnum):
    MARKET = "market"


class OrderAccepted(Message):
    """The gateway took the order; nothing has been quoted or sent yet."""

    type: Literal["OrderAccepted"] = "OrderAccepted"
    order_id: UUID
    order_type: OrderType
    token_pair: str
    side: Side
    amount: FixedDecimal
    slippage_bps: int
    client_order_id: str | None = None


class RoutingStarted(Message):
    """The router took the order and is asking the venues for quotes."""

    type: Literal["RoutingStarted"] = "RoutingStarted"
    attempt: int


class RouteSelected(Message):
    """The venues were quoted; this plan was chosen and handed over to be built.

    ``quotes`` holds each venue that answered and can fill the whole order alone;
    the plan's legs may also use one that cannot (a split).
    """

    type: Literal["RouteSelected"] = "RouteSelected"
    attempt: int
    quotes: tuple[VenueQuote, ...]
    plan: RoutePlan


class TransactionSubmitted(Message):
    """A signed transaction was recorded before it was first sent.

    From here the order is in flight: only these exact bytes may be sent until
    ``last_valid_block_height`` has passed, so a crash can never produce a second swap.
    When the route went stale before building, ``requoted`` and ``plan`` hold the
    fresh quotes and the plan the transaction carries instead of the routed one.
    """

    type: Literal["TransactionSubmitted"] = "TransactionSubmitted"
    attempt: int
    signature: str
    blockhash: str
    last_valid_block_height: int
    signed_transaction: str
    requoted: tuple[VenueQuote, ...] = ()
    plan: RoutePlan | None = None


class SwapConfirmed(Message):
    """The transaction landed; amounts are what the ledger says moved."""

    type: Literal["SwapConfirmed"] = "SwapConfirmed"
    attempt: int
    tx_hash: str
    slot: int
    amount_in: FixedDecimal
    amount_out: FixedDecimal
    final_price: FixedDecimal
    quoted_amount_in: FixedDecimal
    quoted_amount_out: FixedDecimal
    legs: tuple[RouteLeg, ...]


class RetryScheduled(Message):
    """An attempt failed and the order goes back to routing as ``attempt``."""

    type: Literal["RetryScheduled"] = "RetryScheduled"
    attempt: int
    failed_attempt: int
    failure: FailureClass
    reason: str
    delay_ms: int
    signature: str | None = None


class OrderFailed(Message):
    """The order ended without a swap; ``reason`` is kept for post-mortems."""

    type: Literal["OrderFailed"] = "OrderFailed"
    failed_attempt: int
    failure: FailureClass
    reason: str
    signature: str | None = None


OrderEvent = Annotated[
    OrderAccepted
    | RoutingStarted
    | RouteSelected
    | TransactionSubmitted
    | SwapConfirmed
    | RetryScheduled
    | OrderFailed,
    Field(discriminator="type"),
]

STATUS_OF_EVENT: dict[str, OrderStatus] = {
    "OrderAccepted": OrderStatus.PENDING,
    "RoutingStarted": OrderStatus.ROUTING,
    "RetryScheduled": OrderStatus.ROUTING,
    "RouteSelected": OrderStatus.BUILDING,
    "TransactionSubmitted": OrderStatus.SUBMITTED,
    "SwapConfirmed": OrderStatus.CONFIRMED,
    "OrderFailed": OrderStatus.FAILED,
}

EVENT_TYPES: tuple[str, ...] = tuple(STATUS_OF_EVENT)
