"""HTTP request and response bodies."""

import re
from datetime import datetime
from decimal import Context, Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from gateway.examples import BUY_ORDER, SELL_ORDER
from shared.domain.events import OrderStatus
from shared.domain.model import FixedDecimal, Message
from shared.domain.pairs import SUPPORTED_PAIRS, Side
from shared.domain.quotes import RoutePlan, VenueQuote
from shared.domain.retry import FailureClass

SUPPORTED = ", ".join(SUPPORTED_PAIRS)


# An idempotency key, as a body field (clientOrderId) or a header (Idempotency-Key).
CLIENT_ORDER_ID_PATTERN = r"^[A-Za-z0-9._:-]+$"
MAX_DIGITS = 30
_EXACT = Context(prec=2 * MAX_DIGITS)  # never rounds an amount max_digits admits
# A JSON number's form, as text: ASCII digits, an optional fraction and exponent.
_DECIMAL_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_NOT_FINITE = re.compile(r"[+-]?(s?nan|inf|infinity)", re.IGNORECASE)


class OrderCreate(Message):
    """A market order: swap ``amount`` of the pair's base token.

    ``side`` ``sell`` (the default) spends exactly ``amount`` of the base token
    (ExactIn); ``buy`` receives exactly ``amount`` of it (ExactOut).
    """

    model_config = ConfigDict(
        json_schema_extra={"examples": [SELL_ORDER, BUY_ORDER]},
        # The body has one spelling, the documented camelCase: `token_pair` is an
        # unknown field (422), not a silent synonym of `tokenPair`.
        validate_by_name=False,
    )

    token_pair: str = Field(
        examples=["SOL-USDC"],
        description=f"One of: {SUPPORTED}",
        # Published as an enum so generated clients know the pairs; the validator
        # below still answers anything else with a 422 that lists them.
        json_schema_extra={"enum": list(SUPPORTED_PAIRS)},
    )
    amount: FixedDecimal = Field(
        gt=0, allow_inf_nan=False, max_digits=MAX_DIGITS, examples=[10]
    )
    order_type: Literal["market"] = Field(alias="type", examples=["market"])
    side: Side = Side.SELL
    # strict: JSON true is not 1 bp, nor "50" fifty
    slippage_bps: int = Field(
        default=50, ge=1, le=5_000, strict=True, description="Tolerance in bps"
    )
    client_order_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=CLIENT_ORDER_ID_PATTERN,
        description="Idempotency key: submitting it again returns the same order",
    )

    @field_validator("token_pair")
    @classmethod
    def _supported_pair(cls, value: str) -> str:
        if value not in SUPPORTED_PAIRS:
            raise ValueError(
                f"unsupported pair {value!r}; supported pairs: {SUPPORTED}"
            )
        return value

    @field_validator("amount", mode="before")
    @classmethod
    def _a_number(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("amount must be a number")  # noqa: TRY004 - pydantic wants ValueError
        if (
            isinstance(value, str)
            and not _DECIMAL_TEXT.fullmatch(value)
            and not _NOT_FINITE.fullmatch(value)  # refused below, as not finite
        ):
            # Decimal() would also read "1_000", " 10 " and other scripts' digits.
            raise ValueError(
                "amount must be a decimal number written in digits, like 10 or"
                ' "10.5", without spaces or separators'
            )
        return value

    @field_validator("amount")
    @classmethod
    def _fits_token_precision(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        pair = SUPPORTED_PAIRS.get(info.data.get("token_pair", ""))
        if pair is None:
            return value
        # Exact: the default context's 28 digits would round a 29-30 digit amount
        # (max_digits allows 30) to fewer places before they were counted.
        exponent = value.normalize(_EXACT).as_tuple().exponent
        if isinstance(exponent, int) and -exponent > pair.base.decimals:
            raise ValueError(
                f"amount has more decimal places than {pair.base.symbol} supports"
                f" ({pair.base.decimals})"
            )
        return value


class OrderLinks(Message):
    self_: str = Field(alias="self")
    events: str
    ws: str


class OrderReceipt(Message):
    order_id: UUID
    status: OrderStatus
    links: OrderLinks


class AttemptFailure(Message):
    attempt: int
    failure: FailureClass
    reason: str


class OrderPublic(Message):
    """An order folded from its events."""

    order_id: UUID
    status: OrderStatus
    order_type: str
    token_pair: str
    side: Side
    amount: FixedDecimal
    slippage_bps: int
    client_order_id: str | None
    attempt: int
    quotes: tuple[VenueQuote, ...]
    route_plan: RoutePlan | None
    tx_hash: str | None
    final_price: FixedDecimal | None
    amount_in: FixedDecimal | None
    amount_out: FixedDecimal | None
    quoted_amount_out: FixedDecimal | None
    failures: tuple[AttemptFailure, ...]
    failure_reason: str | None
    version: int
    created_at: datetime
    updated_at: datetime


class OrderSummary(Message):
    order_id: UUID
    status: OrderStatus
    token_pair: str
    side: Side
    amount: FixedDecimal
    venue: str | None
    final_price: FixedDecimal | None
    tx_hash: str | None
    attempts: int
    failure_reason: str | None
    version: int = Field(
        description="The order's stream version this row reflects: its events up"
        " to this version are in it (a WebSocket frame's `version`)"
    )
    created_at: datetime
    updated_at: datetime


class OrderList(Message):
    orders: tuple[OrderSummary, ...]
    as_of_position: int
    next_cursor: str | None = Field(
        description="The next page: pass it as `before`; null on the last page"
    )


class Problem(BaseModel):
    """An error answer: ``detail`` says what went wrong."""

    detail: str


class ValidationIssue(BaseModel):
    """One refused field: ``loc`` names it (``["body", "amount"]``)."""

    type: str
    loc: list[str | int]
    msg: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class ValidationProblem(BaseModel):
    """A refused request: one entry per invalid field."""

    detail: list[ValidationIssue]
