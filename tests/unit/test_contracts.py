"""The published contracts: AsyncAPI document, OpenAPI examples, Postman collection."""

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gateway import examples
from gateway.main import openapi_document
from gateway.schemas import (
    OrderCreate,
    OrderList,
    OrderPublic,
    OrderReceipt,
    Problem,
    ValidationProblem,
)
from shared.domain.events import EVENT_TYPES
from shared.messaging.contract import asyncapi_document, asyncapi_json
from shared.service.asyncapi import asyncapi_api, render_html

ROOT = Path(__file__).resolve().parents[2]
ASYNCAPI = ROOT / "docs" / "asyncapi.json"
POSTMAN = ROOT / "docs" / "postman_collection.json"
METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return openapi_document()


def test_committed_asyncapi_document_is_up_to_date() -> None:
    """docs/asyncapi.json is exactly what FastStream generates now."""
    assert ASYNCAPI.read_text(encoding="utf-8") == asyncapi_json(), (
        "regenerate: python -c 'from shared.messaging.contract import asyncapi_json;"
        ' print(asyncapi_json(), end="")\' > docs/asyncapi.json'
    )


def test_asyncapi_describes_exchange_queues_and_envelope() -> None:
    """Every event type has a channel on the events exchange; queues are consumed."""
    document = asyncapi_document()
    assert document["asyncapi"] == "3.0.0"
    channels = document["channels"].values()
    addresses = {c["address"] for c in channels}
    assert {f"order.{t}" for t in EVENT_TYPES} <= addresses
    exchanges = {
        c["bindings"]["amqp"]["exchange"]["name"]
        for c in channels
        if c["bindings"]["amqp"]["is"] == "routingKey"
    }
    assert exchanges == {"oe.events"}
    queues = {
        c["bindings"]["amqp"]["queue"]["name"]
        for c in channels
        if c["bindings"]["amqp"]["is"] == "queue"
    }
    assert {"oe.router", "oe.executor"} <= queues
    schemas = document["components"]["schemas"]
    assert set(EVENT_TYPES) | {"EventEnvelope"} <= set(schemas)
    union = schemas["EventEnvelope"]["properties"]["event"]
    assert {ref["$ref"].rsplit("/", 1)[-1] for ref in union["oneOf"]} == set(
        EVENT_TYPES
    )


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag in {"script", "img", "iframe"} or (
            tag == "link" and named.get("rel") != "canonical"
        ):
            self.loads.append(f"{tag} {named}")


def test_asyncapi_page_and_json_are_served_without_external_assets() -> None:
    """/asyncapi.json answers the document; /asyncapi loads nothing at all."""
    app = FastAPI()
    app.include_router(asyncapi_api("oe"))
    client = TestClient(app)
    raw = client.get("/asyncapi.json")
    assert raw.status_code == 200
    assert raw.json() == asyncapi_document("oe")
    page = client.get("/asyncapi")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    refs = _Refs()
    refs.feed(page.text)
    assert refs.loads == []
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", page.text)
    for event_type in EVENT_TYPES:
        assert f"order.{event_type}" in page.text
    assert 'id="schema-EventEnvelope"' in render_html(asyncapi_document())


def test_openapi_request_body_has_sell_and_buy_examples(
    openapi: dict[str, Any],
) -> None:
    """The submit body shows a sell and a buy with clientOrderId, both valid."""
    body = openapi["paths"]["/api/orders/execute"]["post"]["requestBody"]
    named = body["content"]["application/json"]["examples"]
    values = [example["value"] for example in named.values()]
    assert any(v.get("side") == "buy" and v.get("clientOrderId") for v in values)
    for value in values:
        OrderCreate.model_validate(value)
    schema_examples = openapi["components"]["schemas"]["OrderCreate"]["examples"]
    assert examples.BUY_ORDER in schema_examples


def _example(operation: dict[str, Any], status: str) -> Any:
    content = operation["responses"][status]["content"]["application/json"]
    return content["example"]


def test_every_gateway_response_has_an_example(openapi: dict[str, Any]) -> None:
    """Each documented JSON response of each operation carries an example."""
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            for status, response in operation["responses"].items():
                content = response.get("content", {}).get("application/json")
                if content is None or path == "/asyncapi.json":
                    continue
                assert "example" in content or "examples" in content, (
                    f"{method.upper()} {path} {status} has no example"
                )
    execute = openapi["paths"]["/api/orders/execute"]["post"]
    assert {"200", "202", "409", "413", "422"} <= set(execute["responses"])


def test_response_examples_are_what_the_models_accept(
    openapi: dict[str, Any],
) -> None:
    """The examples validate against the models the API answers with, as the
    document serves them: with their null members, which FastAPI would drop."""
    paths = openapi["paths"]
    OrderPublic.model_validate(_example(paths["/api/orders/{order_id}"]["get"], "200"))
    OrderList.model_validate(_example(paths["/api/orders"]["get"], "200"))
    OrderReceipt.model_validate(examples.RECEIPT_ACCEPTED)
    OrderReceipt.model_validate(examples.RECEIPT_REPLAYED)
    for problem in (
        examples.CONFLICT,
        examples.TOO_LARGE,
        examples.NOT_FOUND,
        examples.STORE_UNAVAILABLE,
    ):
        Problem.model_validate(problem)
    ValidationProblem.model_validate(examples.INVALID)
    OrderPublic.model_validate(examples.ORDER)
    OrderList.model_validate(examples.ORDER_LIST)


def _postman_requests(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for item in items:
        if "item" in item:
            found += _postman_requests(item["item"])
        else:
            found.append(item)
    return found


def _operation_pattern(path: str) -> re.Pattern[str]:
    parts = [
        "[^/]+" if part.startswith("{") else re.escape(part)
        for part in path.strip("/").split("/")
    ]
    return re.compile("^" + "/".join(parts) + "$")


def test_postman_collection_covers_every_gateway_route(
    openapi: dict[str, Any],
) -> None:
    """The v2.1 collection parses and has a request for each OpenAPI operation."""
    collection = json.loads(POSTMAN.read_text(encoding="utf-8"))
    assert collection["info"]["schema"].endswith("/v2.1.0/collection.json")
    variables = {v["key"]: v["value"] for v in collection["variable"]}
    assert variables["baseUrl"].startswith("http")
    assert variables["wsUrl"].startswith("ws")
    requests = _postman_requests(collection["item"])
    sent = set()
    for item in requests:
        request = item["request"]
        url = request["url"]
        assert url["raw"].startswith("{{baseUrl}}/"), item["name"]
        assert url["host"] == ["{{baseUrl}}"]
        sent.add((request["method"].lower(), "/".join(url["path"])))
        if request.get("body"):
            json.loads(request["body"]["raw"])
    for path, item in openapi["paths"].items():
        for method in set(item) & METHODS:
            pattern = _operation_pattern(path)
            assert any(m == method and pattern.match(p) for m, p in sent), (
                f"Postman collection lacks {method.upper()} {path}"
            )
    descriptions = " ".join(item["request"]["description"] for item in requests)
    assert "{{wsUrl}}/ws/orders/{{orderId}}" in descriptions
    bodies = [
        json.loads(item["request"]["body"]["raw"])
        for item in requests
        if item["request"].get("body")
    ]
    assert any(b.get("side") == "buy" and b.get("clientOrderId") for b in bodies)
    assert any(float(b.get("amount", 1)) <= 0 for b in bodies), "no bad-input example"
