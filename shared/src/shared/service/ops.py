"""Liveness, readiness and metrics endpoints, the same on every service."""

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

Readiness = Callable[[], Awaitable[dict[str, bool]]]


def runtime_readiness(app: FastAPI) -> Readiness:
    """Readiness of the runtime the app's lifespan stored in ``app.state``."""

    async def readiness() -> dict[str, bool]:
        runtime = getattr(app.state, "runtime", None)
        if runtime is None:
            return {"started": False}
        checks: dict[str, bool] = await runtime.readiness()
        return checks

    return readiness


def _example(description: str, body: object) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"example": body}},
    }


READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _example(
        "Ready: every check passed",
        {
            "status": "ready",
            "checks": {
                "store": True,
                "broker": True,
                "background": True,
                "consumers": True,
            },
        },
    ),
    503: _example(
        "Not ready: the failing checks are false",
        {
            "status": "unavailable",
            "checks": {
                "store": True,
                "broker": True,
                "background": True,
                "consumers": False,
            },
        },
    ),
}


def ops_api(readiness: Readiness) -> APIRouter:
    api = APIRouter(tags=["operations"])

    @api.get(
        "/healthz",
        summary="The process is alive",
        responses={200: _example("Alive", {"status": "ok"})},
    )
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get(
        "/readyz",
        summary="Store and broker reachable; consumers attached to their queues",
        description="`store`: a pooled connection answers; `broker`: the AMQP"
        " connection is up; `background`: every background loop of the process"
        " (relay, projections, a service's own) still runs;"
        " `consumers` (router, executor, notifier): every"
        " subscriber is consuming and a passive declare of its queue reports at"
        " least one consumer.",
        responses=READY_RESPONSES,
    )
    async def readyz() -> JSONResponse:
        checks = await readiness()
        ready = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
        )

    @api.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return api
