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


def _is_json(content_type: str | None) -> bool:
    """What FastAPI reads as JSON: ``application/json`` or ``application/*+json``."""
    media = (content_type or "").partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def not_json(content_type: str | None) -> str:
    return (
        f"Content-Type must be application/json, got {content_type!r}"
        if content_type
        else "Content-Type must be application/json; the request has none"
    )


class ExactNumbersRoute(APIRoute):
    """A route that parses its JSON body with :class:`ExactNumbersRequest`.

    A body in another media type (a form, or curl's default without ``-H``) is a
    415 that names the header: read any other way, FastAPI answers a 422 about
    the body's shape that never mentions it.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        if self.body_field is None:
            return handle  # no body to read

        async def exact(request: Request) -> Response:
            if not _is_json(content_type := request.headers.get("content-type")):
                return JSONResponse(
                    status_code=415,
                    content={"detail": not_json(content_type)},
                    headers={"Accept": "application/json"},
                )
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
    return JSONResponse(
        status_code=422,
        content={"detail": jsonable_encoder([_as_written(i) for i in issues])},
    )


def _as_written(issue: dict[str, Any]) -> dict[str, Any]:
    written = dict(issue)
    if "input" in issue:
        written["input"] = jsonable_encoder(issue["input"], custom_encoder=_AS_TEXT)
    if isinstance(issue.get("ctx", {}).get("error"), Exception):
        # A validator's ValueError, which the encoder would write as {}: its text
        # is the message already.
        context = {k: v for k, v in issue["ctx"].items() if k != "error"}
        if context:
            written["ctx"] = context
        else:
            del written["ctx"]
    return written


def _echo(number: Decimal) -> str:
    return number.text if isinstance(number, WrittenNumber) else str(number)


_AS_TEXT: dict[Any, Callable[[Any], Any]] = {
    Decimal: _echo,
    # FastAPI's encoder would decode them strictly, and a body that is not
    # UTF-8 turn the 422 into a 500.
    bytes: lambda raw: raw.decode("utf-8", "replace"),
}
