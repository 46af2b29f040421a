"""Composition root of the gateway: HTTP API, read model projector, dashboard."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from gateway.admission import Admission, InFlight
from gateway.api import orders_api
from gateway.exact_numbers import validation_problem
from gateway.limits import BodySizeLimit
from gateway.readmodel import OrdersProjection, OrdersView
from gateway.stalled import StalledWatch
from gateway.web import mount_web
from shared.eventstore.follower import Follower
from shared.eventstore.memory import InMemoryEventStore
from shared.eventstore.pool import Pool
from shared.logging import configure_logging
from shared.service.app import serve, service_app
from shared.service.runtime import make_broker, running
from shared.settings import Settings, load_settings

DESCRIPTION = """
Submit market swaps on Solana pairs and follow them to a terminal status.

Every order is an append-only stream of events; statuses stream over the notifier's
WebSocket (`/ws/orders/{orderId}`) as `pending → routing → building → submitted →
confirmed | failed`.

The event contract (exchanges, queues, message schemas) is at `/asyncapi` (page)
and `/asyncapi.json` (AsyncAPI 3.0).
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    configure_logging(settings, service="gateway")
    return _build_app(settings)


def openapi_document(settings: Settings | None = None) -> dict[str, Any]:
    """The OpenAPI document the running gateway serves, built without any I/O.

    The order routes are added in the lifespan, once the store is open; here they
    are added with stand-ins that are never called, only described.
    """
    settings = settings or load_settings()
    app = _build_app(settings)
    app.include_router(
        orders_api(
            settings=settings,
            store=InMemoryEventStore(),
            view=OrdersView(cast("Pool", None)),
            projector=cast("Follower", None),
            admission=Admission(_never_counted, limit=settings.max_orders_in_flight),
        )
    )
    return app.openapi()


async def _never_counted() -> InFlight:
    raise NotImplementedError("the OpenAPI document is built without counting")


def _build_app(settings: Settings) -> FastAPI:
    broker = make_broker(settings, prefetch=1)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(settings, broker) as runtime:
            projection = OrdersProjection(
                pool=runtime.pool, checkpoints=runtime.checkpoints
            )
            projector = runtime.follow(projection.subscriber, projection.apply)
            view = OrdersView(runtime.pool)
            admission = Admission(
                view.count_in_flight,
                limit=settings.max_orders_in_flight,
                target_wait_s=settings.admission_target_wait_ms / 1000,
                wait_s=settings.admission_queue_ms / 1000,
            )
            await admission.refresh()
            runtime.spawn(admission.run(), "admission")
            stalled = StalledWatch(
                view.stalled,
                after_s=settings.stalled_after_ms / 1000,
                leading=lambda: projector.is_leader,
            )
            runtime.spawn(stalled.run(), "stalled-orders")
            app.include_router(
                orders_api(
                    settings=settings,
                    store=runtime.store,
                    view=view,
                    projector=projector,
                    admission=admission,
                )
            )
            app.state.runtime = runtime
            yield

    app = service_app(
        "Order execution engine",
        settings,
        lifespan,
        description=DESCRIPTION,
        version="0.1.0",
    )
    app.add_exception_handler(RequestValidationError, validation_problem)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    mount_web(app)
    return app


def run() -> None:
    settings = load_settings()
    serve(create_app(settings), settings, settings.gateway_port)
