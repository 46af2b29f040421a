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


VALIDITY = timedelta(seconds=2)


def test_a_route_expires_when_a_quote_it_uses_expires() -> None:
    """Only the quotes of venues the plan uses decide, not when it was recorded."""
    quotes = (
        a_quote(Venue.METEORA, NOW - timedelta(seconds=1)),
        a_quote(Venue.RAYDIUM, NOW + timedelta(seconds=1)),
    )

    def expired(plan: RoutePlan) -> bool:
        return route_expired(quotes, plan, routed_at=NOW, validity=VALIDITY, now=NOW)

    assert expired(a_plan(venue=Venue.METEORA))
    assert not expired(a_plan(venue=Venue.RAYDIUM))


def test_a_split_no_venue_quoted_alone_is_as_old_as_its_record() -> None:
    """Without a quote behind its legs, the plan expires a validity after routing."""
    split = a_plan()
    routed_at = NOW - VALIDITY

    assert not route_expired((), split, routed_at=routed_at, validity=VALIDITY, now=NOW)
    assert route_expired(
        (),
        split,
        routed_at=routed_at,
        validity=VALIDITY,
        now=NOW + timedelta(milliseconds=1),
    )


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
