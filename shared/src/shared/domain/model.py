"""Base class for every message: frozen, strict, camelCase on the wire."""

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, PlainSerializer
from pydantic.alias_generators import to_camel


def fixed_point(value: Decimal) -> str:
    """``value``'s digits without an exponent: ``0.0000001``, ``100``.

    ``str`` switches to exponent form below 1e-6 and for positive exponents, so an
    order for 0.0000001 SOL would read ``1E-7`` and a JSON ``1e2`` would come back
    as ``1E+2``: the same value, in a form no trader writes and some clients misread.
    """
    return format(value, "f")


FixedDecimal = Annotated[
    Decimal, PlainSerializer(fixed_point, return_type=str, when_used="json")
]
"""A ``Decimal`` whose JSON form is a fixed-point string (see :func:`fixed_point`).

Every amount, price and fraction in a message has this type: one written form on
HTTP, on the WebSocket, on RabbitMQ and in the event store. Reading accepts either
form, so events written in exponent form still load.
"""


class Message(BaseModel):
    """A frozen value whose JSON form uses camelCase names.

    Events, quotes and API bodies all share this shape, so one JSON dialect is spoken
    on HTTP, on the WebSocket, on RabbitMQ and in the event store.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        ser_json_inf_nan="strings",
    )
