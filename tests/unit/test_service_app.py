"""The HTTP shell every service shares: a store outage is a 503, never a 500."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import psycopg
import psycopg_pool
import pytest
from fastapi import FastAPI

from shared.service.app import service_app
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
