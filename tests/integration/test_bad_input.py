"""Bad input gets a clear 4xx naming the field, and never a half-written order."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.system import System

pytestmark = pytest.mark.integration

VALID: dict[str, Any] = {"amount": 10, "tokenPair": "SOL-USDC", "type": "market"}


def _without(field: str) -> dict[str, Any]:
    return {k: v for k, v in VALID.items() if k != field}


@pytest.mark.parametrize(
    ("body", "field", "phrase"),
    [
        ({**VALID, "amount": 0}, "amount", "greater than 0"),
        ({**VALID, "amount": -5}, "amount", "greater than 0"),
        ({**VALID, "amount": "ten"}, "amount", "decimal"),
        # Decimal() reads these; a trader's "1_000" or " 10 " is a typo to refuse.
        ({**VALID, "amount": "1_000"}, "amount", "in digits"),
        ({**VALID, "amount": " 10 "}, "amount", "in digits"),
        ({**VALID, "amount": "\u0661\u0660"}, "amount", "in digits"),  # Arabic-Indic 10
        ({**VALID, "amount": True}, "amount", "number"),
        ({**VALID, "amount": "Infinity"}, "amount", "finite"),
        ({**VALID, "amount": 0.0000000001}, "amount", "decimal places"),
        # 29 places: more than the default decimal context's 28 digits round away
        ({**VALID, "amount": "1." + "0" * 28 + "1"}, "amount", "decimal places"),
        (_without("amount"), "amount", "required"),
        (_without("tokenPair"), "tokenPair", "required"),
        (_without("type"), "type", "required"),
        ({**VALID, "tokenPair": "DOGE-USDC"}, "tokenPair", "SOL-USDC"),
        ({**VALID, "type": "limit"}, "type", "market"),
        ({**VALID, "side": "short"}, "side", "sell"),
        ({**VALID, "slippageBps": 0}, "slippageBps", "greater than or equal"),
        ({**VALID, "slippageBps": 100_000}, "slippageBps", "less than or equal"),
        ({**VALID, "slippageBps": True}, "slippageBps", "integer"),
        ({**VALID, "slippageBps": "50"}, "slippageBps", "integer"),
        ({**VALID, "clientOrderId": "has spaces"}, "clientOrderId", "pattern"),
        ({**VALID, "surprise": 1}, "surprise", "not permitted"),
        # One spelling, the documented one: a Python-style name is not it.
        (
            {"amount": 10, "token_pair": "SOL-USDC", "type": "market"},
            "token_pair",
            "not permitted",
        ),
        ({**VALID, "slippage_bps": 30}, "slippage_bps", "not permitted"),
    ],
)
def test_invalid_fields_get_422_naming_the_field(
    system: System, body: dict[str, Any], field: str, phrase: str
) -> None:
    """An invalid body is refused with 422 naming the field and the problem."""
    answer = httpx.post(f"{system.base_url}/api/orders/execute", json=body, timeout=10)

    assert answer.status_code == 422
    errors = answer.json()["detail"]
    named = [e for e in errors if field in [str(p) for p in e["loc"]]]
    assert named, errors
    assert any(phrase.lower() in e["msg"].lower() for e in named), named


def _post_raw(system: System, amount: str, side: str = "sell") -> httpx.Response:
    """An order whose amount is the JSON number ``amount``, written as it is."""
    return httpx.post(
        f"{system.base_url}/api/orders/execute",
        content=f'{{"amount": {amount}, "tokenPair": "SOL-USDC", "type": "market",'
        f' "side": "{side}"}}',
        headers={"content-type": "application/json"},
        timeout=10,
    )


def test_a_json_number_amount_past_a_floats_digits_is_refused_for_its_places(
    system: System,
) -> None:
    """1.0000000000000001 is not 1: its 16 places are more than SOL has."""
    answer = _post_raw(system, "1.0000000000000001")

    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "amount"]
    assert "decimal places" in error["msg"]
    assert error["input"] == "1.0000000000000001"


def test_a_refused_json_number_is_echoed_as_it_was_written(system: System) -> None:
    """``-1e2`` comes back as ``-1e2``, not as a Decimal's ``-1E+2``."""
    answer = _post_raw(system, "-1e2")

    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "amount"]
    assert error["input"] == "-1e2"


def test_a_json_number_amount_is_recorded_with_every_digit_sent(
    system: System,
) -> None:
    """17 significant digits, more than a float keeps, are the order's amount."""
    # A buy of more SOL than any pool holds fails at routing: sold instead, it
    # would land and drain the pool the tests after this one trade in.
    answer = _post_raw(system, "12345678.123456789", side="buy")

    assert answer.status_code == 202, answer.text
    detail = httpx.get(f"{system.base_url}{answer.json()['links']['self']}", timeout=10)
    assert detail.json()["amount"] == "12345678.123456789"


@pytest.mark.parametrize("amount", ["NaN", "-Infinity"])
def test_a_non_json_constant_gets_422_naming_the_field(
    system: System, amount: str
) -> None:
    """Python's json.dumps writes NaN and Infinity; they are no amounts."""
    answer = _post_raw(system, amount)

    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "amount"]
    assert error["input"] == amount


def test_json_past_the_parsers_limits_gets_422_not_400(system: System) -> None:
    """An integer of 5,000 digits is valid JSON that Python will not read."""
    answer = _post_raw(system, "1" * 5_000)

    assert answer.status_code == 422, answer.text
    assert "json" in str(answer.json()["detail"]).lower()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (None, b'{"amount": 10, "tokenPair": "SOL-USDC", "type": "market"}'),
        ("application/x-www-form-urlencoded", b"amount=10&tokenPair=SOL-USDC"),
        ("application/octet-stream", b"\xff\xfe not UTF-8"),
    ],
    ids=["no content type", "a form", "bytes that are not UTF-8"],
)
def test_a_body_that_is_not_json_gets_415_naming_the_header(
    system: System, content_type: str | None, body: bytes
) -> None:
    """curl's default (a form) or a missing header: the answer names Content-Type."""
    answer = httpx.post(
        f"{system.base_url}/api/orders/execute",
        content=body,
        headers={"content-type": content_type} if content_type else {},
        timeout=10,
    )

    assert answer.status_code == 415, answer.text
    assert "Content-Type must be application/json" in answer.json()["detail"]
    assert answer.headers["accept"] == "application/json"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_another_method_on_execute_gets_405_not_an_order_id_error(
    system: System, method: str
) -> None:
    answer = httpx.request(method, f"{system.base_url}/api/orders/execute", timeout=10)

    assert answer.status_code == 405, answer.text
    assert answer.headers["allow"] == "POST"
    assert "POST" in answer.json()["detail"]


def test_a_validators_refusal_has_no_empty_context(system: System) -> None:
    """The message says why; no ``"ctx": {"error": {}}`` beside it."""
    answer = httpx.post(
        f"{system.base_url}/api/orders/execute",
        json={**VALID, "tokenPair": "DOGE-USDC"},
        timeout=10,
    )

    (error,) = answer.json()["detail"]
    assert "supported pairs" in error["msg"]
    assert "ctx" not in error, error


def test_every_answer_forbids_framing_and_sniffing(system: System) -> None:
    """The dashboard places orders at a click: no other site may frame it."""
    for path in ("/", "/api/orders", "/docs", "/healthz"):
        answer = httpx.get(f"{system.base_url}{path}", timeout=10)
        assert answer.headers["x-frame-options"] == "DENY", path
        assert answer.headers["content-security-policy"] == "frame-ancestors 'none'"
        assert answer.headers["x-content-type-options"] == "nosniff", path
        assert answer.headers["referrer-policy"] == "no-referrer", path


def test_a_chunked_body_over_the_limit_gets_413(system: System) -> None:
    """Without a Content-Length the size is counted as it arrives."""

    def chunks() -> Iterator[bytes]:
        yield b'{"amount": 10, "pad": "'
        for _ in range(40):
            yield b"x" * 1_000
        yield b'"}'

    answer = httpx.post(
        f"{system.base_url}/api/orders/execute",
        content=chunks(),
        headers={"content-type": "application/json"},
        timeout=10,
    )

    assert answer.status_code == 413, answer.text
    assert "too large" in answer.json()["detail"]


def test_a_body_that_is_not_json_gets_422(system: System) -> None:
    """A malformed JSON body is a 422 that says the JSON is invalid."""
    answer = httpx.post(
        f"{system.base_url}/api/orders/execute",
        content=b'{"amount": 10,',
        headers={"content-type": "application/json"},
        timeout=10,
    )

    assert answer.status_code == 422
    assert "json" in str(answer.json()["detail"]).lower()


def test_a_huge_body_gets_413(system: System) -> None:
    """A body over the limit is refused with 413 before it is parsed."""
    answer = httpx.post(
        f"{system.base_url}/api/orders/execute",
        content=b'{"amount": 10, "pad": "' + b"x" * 1_000_000 + b'"}',
        headers={"content-type": "application/json"},
        timeout=10,
    )

    assert answer.status_code == 413
    assert "too large" in answer.json()["detail"]


def test_an_unknown_order_is_404(system: System) -> None:
    """GET of an order that does not exist is 404, a malformed id 422."""
    missing = httpx.get(
        f"{system.base_url}/api/orders/00000000-0000-0000-0000-000000000000"
    )
    malformed = httpx.get(f"{system.base_url}/api/orders/nope")

    assert missing.status_code == 404
    assert malformed.status_code == 422


def test_an_idempotency_key_that_contradicts_client_order_id_gets_422(
    system: System,
) -> None:
    """Two different idempotency keys in one request are refused, naming the header."""
    answer = httpx.post(
        f"{system.base_url}/api/orders/execute",
        json={**VALID, "clientOrderId": "a-1"},
        headers={"Idempotency-Key": "b-2"},
        timeout=10,
    )

    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]


@pytest.mark.parametrize("key", ["", "has spaces", "a" * 65])
def test_a_malformed_idempotency_key_header_gets_422_naming_it(
    system: System, key: str
) -> None:
    """The header is held to clientOrderId's rules: nothing is recorded under it."""
    answer = httpx.post(
        f"{system.base_url}/api/orders/execute",
        json=VALID,
        headers={"Idempotency-Key": key},
        timeout=10,
    )

    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
