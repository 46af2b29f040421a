"""Quotes from venues and the route plan chosen from them."""

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from shared.domain.model import Message


class Venue(StrEnum):
    RAYDIUM = "raydium"
    METEORA = "meteora"


class VenueQuote(Message):
    """What one venue would do with the whole order, at one slot.

    Amounts are in token units (not raw integer units); ``price_impact_pct`` is a
    fraction (0.01 is one percent), curve-only, fees excluded.
    """

    venue: Venue
    in_amount: Decimal
    out_amount: Decimal
    min_amount_out: Decimal
    max_amount_in: Decimal
    fee: Decimal
    price_impact_pct: Decimal
    slot: int
    expires_at: datetime


class RouteLeg(Message):
    venue: Venue
    bps: int
    in_amount: Decimal
    out_amount: Decimal


class RoutePlan(Message):
    """How an order attempt is spread over the venues, and why.

    ``min_amount_out`` (ExactIn) or ``max_amount_in`` (ExactOut) is the slippage bound
    the transaction carries; the chain refuses a swap that would cross it.
    """

    legs: tuple[RouteLeg, ...]
    in_amount: Decimal
    out_amount: Decimal
    min_amount_out: Decimal
    max_amount_in: Decimal
    gain_bps_over_best_single: Decimal
    reason: str
