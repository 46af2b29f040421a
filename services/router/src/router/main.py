"""Composition root of the router: wires the venues and the queue to the handlers."""

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from router.handlers import RouteOrders
from shared.chain.simulated import SimulatedChain
from shared.logging import configure_logging
from shared.messaging.delivery import subscribe
from shared.service.app import serve, service_app
from shared.service.runtime import make_broker, retry_policy, running
from shared.settings import Settings, load_settings
from shared.venues.simulated import simulated_quoting


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    configure_logging(settings, service="router")
    broker = make_broker(settings, prefetch=settings.router_prefetch)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(settings, broker) as runtime:
            chain = SimulatedChain(runtime.pool, settings, random.Random())
            await chain.ensure_genesis()
            route = RouteOrders(
                orders=runtime.orders,
                quoting=simulated_quoting(settings, chain),
                policy=retry_policy(settings),
            )
            subscriber = subscribe(
                broker,
                runtime.topology.router,
                {
                    "OrderAccepted": route.on_order_accepted,
                    "RetryScheduled": route.on_retry_scheduled,
                },
                prefetch=settings.router_prefetch,
                consumer="router",
            )
            runtime.consuming(subscriber)
            await broker.start()
            app.state.runtime = runtime
            yield

    return service_app("Order router", settings, lifespan)


def run() -> None:
    settings = load_settings()
    serve(create_app(settings), settings, settings.router_http_port)
