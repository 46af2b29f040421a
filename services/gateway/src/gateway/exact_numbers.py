"""Request bodies whose JSON numbers keep every digit the client sent.

A JSON parser that turns ``1.0000000000000001`` into a float reads it as 1, and
``12345678.123456789`` as ``12345678.12345679``: an order would be accepted for an
amount the client never sent, and past the decimal-places check. Reading numbers
with a fraction or an exponent as ``Decimal`` leaves the schema to judge the
value as written, and the 422 that refuses one echoes it as written too.
"""

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any, Self, cast

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute


class ExactNumbersRequest(Request):
    async def json(self) -> Any:  # noqa: ANN401 - the signature it overrides
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = json.loads(
                    body, parse_float=WrittenNumber, parse_constant=_as_text
                )
            except json.JSONDecodeError:
                raise
            except (ValueError, RecursionError) as error:
                # Valid JSON past the parser's limits (an integer of thousands of
                # digits, nesting a thousand deep, bytes that are not UTF-8):
                # answered as invalid JSON (422), not as FastAPI's bare 400.
                raise json.JSONDecodeError(
                    f"not readable: {type(error).__name__}: {error}", "", 0
                ) from error
        return self._json


class WrittenNumber(Decimal):
    """A JSON number with a fraction or an exponent, and the text it was sent as.

    A ``Decimal`` forgets how it was written: ``1e2`` becomes ``1E+2``. A refused
    number is echoed from ``text``; an accepted one is validated into a plain
    ``Decimal``, so nothing past the schema sees this type.
    """

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> Self:
        number = super().__new__(cls, text)
        number.text = text
        return number


def _as_text(constant: str) -> str:
    """``NaN``, ``Infinity``, ``-Infinity``: not JSON, but Python's parser takes
    them. As text, the field refuses them as it would ``"NaN"``, where as floats
    they could not even be echoed in the 422 (no JSON for them)."""
    return constant


class ExactNumbersRoute(APIRoute):
    """A route that parses its JSON body with :class:`ExactNumbersRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def exact(request: Request) -> Response:
            return await handle(ExactNumbersRequest(request.scope, request.receive))

        return exact


async def validation_problem(
    request: Request,  # noqa: ARG001 - an exception handler's signature
    error: Exception,
) -> JSONResponse:
    """FastAPI's own 422 body, but a refused number's ``input`` is its exact text.

    FastAPI's encoder writes a ``Decimal`` as a float, which would echo
    ``1.0000000000000001`` back as ``1.0``: the very digits the 422 is about.
    The input may be the whole body (a missing field), so its numbers are too.
    """
    issues = cast("RequestValidationError", error).errors()  # registered for it
    exact = [
        {**issue, "input": jsonable_encoder(issue["input"], custom_encoder=_AS_TEXT)}
        if "input" in issue
        else issue
        for issue in issues
    ]
    return JSONResponse(status_code=422, content={"detail": jsonable_encoder(exact)})


def _echo(number: Decimal) -> str:
    return number.text if isinstance(number, WrittenNumber) else str(number)


_AS_TEXT: dict[Any, Callable[[Any], Any]] = {Decimal: _echo}
