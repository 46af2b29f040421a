"""Stale routes and how far a fresh quote may drift before an attempt is re-routed."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from shared.domain.pairs import Side
from shared.domain.quotes import RouteLeg, RoutePlan, Venue, VenueQuote
from shared.domain.staleness import drifted_too_far, route_expired

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def a_plan(
    *, out: str = "1630", into: str = "10", venue: Venue = Venue.METEORA
) -> RoutePlan:
    leg = RouteLeg(
        venue=venue, bps=10_000, in_amount=Decimal(into), out_amount=Decimal(out)
    )
    return RoutePlan(
        legs=(leg,),
        in_amount=Decimal(into),
        out_amount=Decimal(out),
        min_amount_out=Decimal(out) * Decimal("0.995"),
        max_amount_in=Decimal(into),
        gain_bps_over_best_single=Decimal(0),
        reason="test",
    )


def a_quote(venue: Venue, expires_at: datetime) -> VenueQuote:
    return VenueQuote(
        venue=venue,
        in_amount=Decimal(10),
        out_amount=Decimal(1630),
        min_amount_out=Decimal(1620),
        max_amount_in=Decimal(10),
        fee=Decimal(0),
        price_impact_pct=Decimal(0),
        slot=1,
        expires_at=expires_at,
    )


def test_a_plan_expires_by_its_own_validity_whatever_its_quotes_say() -> None:
    """A split no venue quoted alone has no quotes; its own expiry still holds."""
    expiring = a_plan().model_copy(update={"expires_at": NOW + timedelta(seconds=1)})
    fresh_quote = (a_quote(Venue.METEORA, NOW + timedelta(days=1)),)

    assert not route_expired((), expiring, now=NOW)
    assert route_expired((), expiring, now=NOW + timedelta(seconds=2))
    assert route_expired(fresh_quote, expiring, now=NOW + timedelta(seconds=2))


def test_a_recorded_plan_without_expiry_or_quotes_is_stale() -> None:
    """A plan recorded before plans carried an expiry, with no quote to date it."""
    assert route_expired((), a_plan(), now=NOW)


def test_a_route_expires_when_a_quote_it_uses_expires() -> None:
    """Without its own expiry, only the quotes of venues the plan uses decide."""
    quotes = (
        a_quote(Venue.METEORA, NOW - timedelta(seconds=1)),
        a_quote(Venue.RAYDIUM, NOW + timedelta(seconds=1)),
    )

    assert route_expired(quotes, a_plan(venue=Venue.METEORA), now=NOW)
    assert not route_expired(quotes, a_plan(venue=Venue.RAYDIUM), now=NOW)


def test_a_sell_drifts_too_far_past_half_the_tolerance() -> None:
    """At 50 bps tolerance a sell may lose up to 25 bps of output before re-routing."""
    routed = a_plan(out="10000")

    assert not drifted_too_far(
        routed, a_plan(out="9975"), side=Side.SELL, slippage_bps=50
    )
    assert drifted_too_far(routed, a_plan(out="9974"), side=Side.SELL, slippage_bps=50)


def test_a_buy_drifts_too_far_when_it_costs_more_input() -> None:
    """A buy compares the input it must pay."""
    routed = a_plan(into="10000")

    assert not drifted_too_far(
        routed, a_plan(into="10025"), side=Side.BUY, slippage_bps=50
    )
    assert drifted_too_far(routed, a_plan(into="10026"), side=Side.BUY, slippage_bps=50)
