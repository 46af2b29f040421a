"""The JSON form of amounts and prices: digits, never an exponent."""

import json
from decimal import Decimal

import pytest
from pydantic import TypeAdapter

from shared.domain.events import OrderEvent, SwapConfirmed
from shared.domain.model import fixed_point
from tests.unit.order_events import accepted, confirmed

EVENTS: TypeAdapter[OrderEvent] = TypeAdapter(OrderEvent)


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("1E-7", "0.0000001"),
        ("1.00E-7", "0.000000100"),
        ("1E+2", "100"),
        ("12345678.123456789", "12345678.123456789"),
        ("10", "10"),
        ("-0", "-0"),
    ],
)
def test_fixed_point_keeps_every_digit_and_drops_the_exponent(
    value: str, written: str
) -> None:
    assert fixed_point(Decimal(value)) == written
    assert Decimal(written) == Decimal(value)


def test_an_events_amounts_are_written_in_digits() -> None:
    order = accepted().model_copy(update={"amount": Decimal("1E-7")})
    event = confirmed().model_copy(
        update={"amount_in": Decimal("1E-7"), "final_price": Decimal("1.8E+2")}
    )

    assert json.loads(order.model_dump_json(by_alias=True))["amount"] == "0.0000001"
    assert order.model_dump(mode="json")["amount"] == "0.0000001"
    written = json.loads(event.model_dump_json(by_alias=True))
    assert (written["amountIn"], written["finalPrice"]) == ("0.0000001", "180")


def test_an_event_recorded_in_exponent_form_still_loads_with_its_value() -> None:
    """Events written before amounts were fixed-point are in the store for good."""
    old = json.loads(confirmed().model_dump_json(by_alias=True))
    old |= {"amountIn": "1.00E-7", "finalPrice": "1.8E+2"}
    old["legs"][0]["inAmount"] = "1E-7"

    event = EVENTS.validate_json(json.dumps(old))

    assert isinstance(event, SwapConfirmed)
    assert event.amount_in == Decimal("0.0000001")
    assert event.final_price == 180
    assert event.legs[0].in_amount == Decimal("0.0000001")
    rewritten = json.loads(event.model_dump_json(by_alias=True))
    assert rewritten["amountIn"] == "0.000000100"
    assert rewritten["legs"][0]["inAmount"] == "0.0000001"
