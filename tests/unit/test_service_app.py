"""The HTTP shell every service shares: a store outage is a 503, never a 500; the
listening socket it binds passes its options to every connection."""

import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import psycopg
import psycopg_pool
import pytest
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE

from shared.service.app import _listening_socket, serve, service_app
from shared.settings import Settings


@asynccontextmanager
async def no_runtime(_app: FastAPI) -> AsyncIterator[None]:
    yield


def app_failing_with(error: Exception) -> FastAPI:
    app = service_app("test", Settings(), no_runtime)

    @app.get("/orders")
    async def orders() -> None:
        raise error

    return app


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError("server closed the connection unexpectedly"),
        psycopg_pool.PoolTimeout("couldn't get a connection after 30 s"),
        psycopg.errors.ReadOnlySqlTransaction(
            "cannot execute INSERT in a read-only transaction"
        ),
    ],
    ids=["connection lost", "no connection", "a demoted primary"],
)
async def test_an_unreachable_store_answers_503_with_retry_after(
    error: Exception,
) -> None:
    transport = httpx.ASGITransport(app=app_failing_with(error))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/orders")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json() == {
        "detail": "the event store is unavailable; retry shortly"
    }


def test_every_accepted_connection_gets_the_stalled_client_timeout() -> None:
    """The timeout set on the listening socket is each connection's own."""
    with contextlib.closing(
        _listening_socket(
            "127.0.0.1", 0, reuse_port=False, send_buffer_bytes=0, user_timeout_ms=2500
        )
    ) as listener:
        listener.listen()
        with (
            socket.create_connection(listener.getsockname()),
            contextlib.closing(listener.accept()[0]) as accepted,
        ):
            timeout = accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)

    assert timeout == 2500


def test_a_taken_port_is_a_failed_startup() -> None:
    """Binding its own socket, a service on a taken port exits as uvicorn would."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        settings = Settings(http_host="127.0.0.1")
        with pytest.raises(SystemExit) as exited:
            serve(
                service_app("test", settings, no_runtime),
                settings,
                port,
                stalled_client_timeout_s=30,
            )

    assert exited.value.code == STARTUP_FAILURE
