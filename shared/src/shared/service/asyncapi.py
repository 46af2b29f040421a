"""The event contract for people and tools: ``/asyncapi.json`` and ``/asyncapi``.

``/asyncapi.json`` is the AsyncAPI 3.0 document FastStream generates from the
topology (``shared.messaging.contract``), for this deployment's namespace.
``/asyncapi`` renders its channels, operations and message schemas as one
self-contained HTML page: FastStream's own page loads its renderer from a CDN, and
nothing a browser loads from the gateway may come from another host.
"""

import json
from functools import cache
from html import escape
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse

from shared.messaging.contract import asyncapi_document

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:72rem;padding:1rem 2rem;
color:#1d2330;background:#fbfcfe}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #d5dae3;padding-bottom:.2rem;
margin-top:2rem}code,pre{font:13px/1.4 ui-monospace,monospace}
pre{background:#eef1f6;padding:.8rem;overflow:auto;border-radius:4px}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #d5dae3;padding:.3rem
.5rem;text-align:left;vertical-align:top}th{background:#eef1f6}
.muted{color:#5b6475}details{margin:.4rem 0}summary{cursor:pointer;font-weight:600}
"""


@cache
def _document(namespace: str) -> dict[str, Any]:
    return asyncapi_document(namespace)


def _schema_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _channel_rows(document: dict[str, Any]) -> str:
    operations = document.get("operations", {})
    messages = document.get("components", {}).get("messages", {})
    action_of = {
        op["channel"]["$ref"].rsplit("/", 1)[-1]: op.get("action", "")
        for op in operations.values()
    }
    rows = []
    for name, channel in document.get("channels", {}).items():
        amqp = channel.get("bindings", {}).get("amqp", {})
        where = (
            f"queue <code>{escape(amqp['queue']['name'])}</code>"
            if amqp.get("is") == "queue"
            else f"exchange <code>{escape(amqp.get('exchange', {}).get('name', ''))}"
            f"</code>, routing key <code>{escape(channel.get('address', ''))}</code>"
        )
        payloads = []
        for ref in channel.get("messages", {}).values():
            message = messages.get(_schema_name(ref["$ref"]), {})
            payload = message.get("payload", {}).get("$ref", "")
            if payload:
                schema = _schema_name(payload)
                payloads.append(
                    f'<a href="#schema-{escape(schema)}">{escape(schema)}</a>'
                )
        receives = action_of.get(name, "") == "receive"
        operation = "the services receive" if receives else "the relay sends"
        rows.append(
            "<tr>"
            f"<td><code>{escape(name)}</code></td>"
            f"<td>{operation}</td>"
            f"<td>{where}</td>"
            f"<td>{', '.join(payloads)}</td>"
            f"<td>{escape(channel.get('description', ''))}</td>"
            "</tr>"
        )
    return "".join(rows)


def _schemas(document: dict[str, Any]) -> str:
    schemas = document.get("components", {}).get("schemas", {})
    parts = []
    for name in sorted(schemas, key=lambda n: (n != "EventEnvelope", n)):
        schema = schemas[name]
        body = escape(json.dumps(schema, indent=2))
        description = escape(schema.get("description", "").strip())
        is_open = " open" if name == "EventEnvelope" else ""
        parts.append(
            f'<details id="schema-{escape(name)}"{is_open}>'
            f"<summary>{escape(name)}</summary>"
            f'<p class="muted">{description}</p><pre>{body}</pre></details>'
        )
    return "".join(parts)


def render_html(document: dict[str, Any]) -> str:
    """One page, no scripts, no external assets: channels, then message schemas."""
    info = document.get("info", {})
    servers = "".join(
        f"<li><code>{escape(s.get('protocol', ''))}://{escape(s.get('host', ''))}"
        f"{escape(s.get('pathname', ''))}</code> ({escape(name)})</li>"
        for name, s in document.get("servers", {}).items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(info.get("title", "AsyncAPI"))}</title>
<style>{_STYLE}</style></head><body>
<h1>{escape(info.get("title", ""))}</h1>
<p class="muted">AsyncAPI {escape(document.get("asyncapi", ""))} · version
{escape(info.get("version", ""))} · the raw document:
<a href="asyncapi.json"><code>/asyncapi.json</code></a></p>
<pre>{escape(info.get("description", ""))}</pre>
<h2>Servers</h2><ul>{servers}</ul>
<h2>Channels</h2>
<table><thead><tr><th>channel</th><th>operation</th><th>where</th><th>payload</th>
<th>description</th></tr></thead><tbody>{_channel_rows(document)}</tbody></table>
<h2>Message schemas</h2>{_schemas(document)}
</body></html>
"""


def asyncapi_api(namespace: str) -> APIRouter:
    api = APIRouter(tags=["reference"])

    @api.get(
        "/asyncapi.json",
        summary="The event contract (AsyncAPI 3.0, generated by FastStream)",
        response_class=JSONResponse,
        responses={
            200: {
                "description": "The AsyncAPI document",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    )
    async def asyncapi_json() -> JSONResponse:
        return JSONResponse(_document(namespace))

    @api.get(
        "/asyncapi",
        summary="The event contract as a page (no external assets)",
        response_class=HTMLResponse,
    )
    async def asyncapi_page() -> HTMLResponse:
        return HTMLResponse(render_html(_document(namespace)))

    return api
