"""The HTTP shell every service shares: ops endpoints, contracts, docs, and serving."""

import asyncio
import contextlib
import logging
import math
import socket
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Final, cast

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import STARTUP_FAILURE

from shared.eventstore.port import UnreadableStreamError
from shared.postgres.connections import STORE_UNAVAILABLE_ERRORS
from shared.service.asyncapi import asyncapi_api
from shared.service.docs import mount_docs
from shared.service.ops import ops_api, runtime_readiness
from shared.settings import Settings

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

logger = logging.getLogger(__name__)

STORE_UNAVAILABLE = {"detail": "the event store is unavailable; retry shortly"}


def service_app(
    title: str,
    settings: Settings,
    lifespan: Lifespan,
    *,
    description: str = "",
    version: str = "0.1.0",
) -> FastAPI:
    """A FastAPI app with /healthz, /readyz, /metrics, /asyncapi(.json) and /docs.

    FastAPI's own docs pages are switched off: they load Swagger UI from a CDN.
    """
    app = _ServiceApp(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    for unavailable in STORE_UNAVAILABLE_ERRORS:
        app.add_exception_handler(unavailable, _store_unavailable)
    app.add_exception_handler(UnreadableStreamError, _unreadable_events)
    app.include_router(ops_api(runtime_readiness(app)))
    app.include_router(asyncapi_api(settings.broker_namespace))
    mount_docs(app)
    return app


class SecurityHeaders:
    """The headers every answer carries, whoever sends it.

    The dashboard submits orders at a click, so no other site may frame it
    (clickjacking); no answer is sniffed into another media type; and no URL with
    an order id in it leaks to another site as a referrer. A content policy
    beyond framing is left out: the notifier the dashboard connects to is
    another origin, set per deployment.
    """

    HEADERS: Final = (
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"content-security-policy", b"frame-ancestors 'none'"),
        (b"referrer-policy", b"no-referrer"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *self.HEADERS]
            await send(message)

        await self._app(scope, receive, with_headers)


class _ServiceApp(FastAPI):
    """FastAPI, with the examples its routes declare kept in its document as
    written, and every answer with :class:`SecurityHeaders`.

    FastAPI drops every null from the document (``exclude_none``), and that
    reaches into the examples: an example order would lose its
    ``"failureReason": null`` and no longer show what the API answers, nor
    validate against its own schema.
    """

    def __init__(self, **settings: Any) -> None:  # noqa: ANN401 - FastAPI's own
        super().__init__(**settings)
        self._declared: list[tuple[str, APIRoute]] = []

    def include_router(
        self,
        router: APIRouter,
        *,
        prefix: str = "",
        **kwargs: Any,  # noqa: ANN401 - FastAPI's own keywords, passed on
    ) -> None:
        super().include_router(router, prefix=prefix, **kwargs)
        self._declared += [
            (prefix, route) for route in router.routes if isinstance(route, APIRoute)
        ]

    def build_middleware_stack(self) -> ASGIApp:
        # Outside every other middleware, so a 413 or a 500 carries them too.
        return SecurityHeaders(super().build_middleware_stack())

    def openapi(self) -> dict[str, Any]:
        document = super().openapi()
        direct = [("", r) for r in self.routes if isinstance(r, APIRoute)]
        for prefix, route in [*direct, *self._declared]:
            operations = document["paths"].get(prefix + route.path_format, {})
            for method in route.methods or ():
                if (operation := operations.get(method.lower())) is not None:
                    _restore_examples(operation["responses"], route.responses)
        return document


def _restore_examples(
    documented: dict[str, Any], declared: dict[int | str, dict[str, Any]]
) -> None:
    for code, response in declared.items():
        for media, content in response.get("content", {}).items():
            target = documented.get(str(code), {}).get("content", {}).get(media)
            for key in ("example", "examples"):
                if target is not None and key in content:
                    target[key] = content[key]


async def _unreadable_events(request: Request, error: Exception) -> JSONResponse:
    """A newer release recorded an event this one cannot read (a rolling upgrade
    under way), or a row is corrupt: this replica cannot answer, an upgraded one
    can. A 503, not a 500 that looks like a bug of the request."""
    logger.error(
        "a stream holds an event this release cannot read",
        extra={"kind": "unreadable_event", "path": request.url.path},
        exc_info=error,
    )
    stream = cast("UnreadableStreamError", error).stream  # registered for it
    order = "the order" if stream is None else f"order {stream}"
    return JSONResponse(
        status_code=503,
        content={
            "detail": f"{order} holds an event this release cannot read (one a"
            " newer release recorded, or a corrupt one); a gateway of that"
            " release can answer"
        },
    )


async def _store_unavailable(request: Request, error: Exception) -> JSONResponse:
    """The store is briefly away (a restart, say): 503, never a 500.

    The pool hands out a recently used connection without checking it, so after
    a server restart each one fails once; checking the idle ones now replaces
    the rest before the next requests get them. One check at a time: a burst of
    failing requests needs no more.
    """
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is not None and not _CHECKS:
        task = asyncio.create_task(runtime.pool.check())
        _CHECKS.add(task)
        task.add_done_callback(_CHECKS.discard)
    logger.warning("store unavailable: %s", error, extra={"kind": "store_unavailable"})
    return JSONResponse(
        STORE_UNAVAILABLE,
        status_code=503,
        headers={"Retry-After": "1"},
    )


_CHECKS: set["asyncio.Task[None]"] = set()


def serve(
    app: FastAPI,
    settings: Settings,
    port: int,
    *,
    send_buffer_bytes: int = 0,
    stalled_client_timeout_s: float = 0,
) -> None:
    """Run ``app`` on ``port`` until SIGTERM or SIGINT.

    ``send_buffer_bytes`` sets each connection's kernel send buffer (through the
    listening socket, whose size accepted sockets inherit); 0 leaves it to the
    kernel. ``stalled_client_timeout_s`` has the kernel reset a connection whose
    peer has acknowledged nothing, or kept its receive window shut, for that long
    (TCP_USER_TIMEOUT, inherited the same way); 0 leaves it to the kernel, which
    keeps probing a shut window for as long as the peer answers.
    """
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=port,
        log_config=None,
        # Status frames are a few hundred bytes: compressing each one for each
        # subscriber costs far more CPU than the bytes it saves.
        ws_per_message_deflate=False,
    )
    sockets = None
    if settings.http_reuse_port or send_buffer_bytes or stalled_client_timeout_s:
        try:
            sockets = [
                _listening_socket(
                    settings.http_host,
                    port,
                    reuse_port=settings.http_reuse_port,
                    send_buffer_bytes=send_buffer_bytes,
                    user_timeout_ms=math.ceil(stalled_client_timeout_s * 1000),
                )
            ]
        except OSError as error:
            # As uvicorn does when it binds: a taken port is a failed startup.
            logger.error("cannot listen on port %d: %s", port, error)  # noqa: TRY400 - the cause is the message
            sys.exit(STARTUP_FAILURE)
    server = _Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=sockets)
    # As uvicorn.run does: a failed startup is not a clean exit.
    if not server.started:
        sys.exit(STARTUP_FAILURE)


class _Server(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if sockets is not None and self.started:
            # uvicorn says where it listens only for sockets it bound itself.
            host, port = sockets[0].getsockname()[:2]
            logger.info(
                "Uvicorn running on http://%s:%d",
                host,
                port,
            )


def _listening_socket(
    host: str,
    port: int,
    *,
    reuse_port: bool,
    send_buffer_bytes: int,
    user_timeout_ms: int = 0,
) -> socket.socket:
    """A socket bound to ``port``, shared with other replicas on this host when
    ``reuse_port``.

    uvicorn starts listening on it only once the app's startup has finished, so
    the kernel hands connections to a replica only when it is ready for them.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if send_buffer_bytes:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)
        if user_timeout_ms:
            # Since Linux 5.11 this also bounds zero-window probing: without it a
            # peer that reads nothing but still ACKs is kept for ever, and so are
            # its buffers, as closing waits for them to drain.
            option = getattr(socket, "TCP_USER_TIMEOUT", None)
            if option is None:
                logger.warning(
                    "no TCP_USER_TIMEOUT on this platform: a client that never"
                    " reads is not dropped"
                )
            else:
                sock.setsockopt(socket.IPPROTO_TCP, option, user_timeout_ms)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
