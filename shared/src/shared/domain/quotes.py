"""Quotes from venues and the route plan chosen from them."""

from datetime import datetime
from enum import StrEnum

from shared.domain.model import FixedDecimal, Message


class Venue(StrEnum):
    RAYDIUM = "raydium"
    METEORA = "meteora"


class VenueQuote(Message):
    """What one venue would do with the whole order, at one slot.

    Amounts are in token units (not raw integer units); ``price_impact_pct`` is a
    fraction (0.01 is one percent), curve-only, fees excluded.
    """

    venue: Venue
    in_amount: FixedDecimal
    out_amount: FixedDecimal
    min_amount_out: FixedDecimal
    max_amount_in: FixedDecimal
    fee: FixedDecimal
    price_impact_pct: FixedDecimal
    slot: int
    expires_at: datetime


class RouteLeg(Message):
    venue: Venue
    bps: int
    in_amount: FixedDecimal
    out_amount: FixedDecimal


class RoutePlan(Message):
    """How an order attempt is spread over the venues, and why.

    ``min_amount_out`` (ExactIn) or ``max_amount_in`` (ExactOut) is the slippage bound
    the transaction carries; the chain refuses a swap that would cross it.
    """

    legs: tuple[RouteLeg, ...]
    in_amount: FixedDecimal
    out_amount: FixedDecimal
    min_amount_out: FixedDecimal
    max_amount_in: FixedDecimal
    gain_bps_over_best_single: FixedDecimal
    reason: str
