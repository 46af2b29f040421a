"""Composition root of the notifier: broker feed → hub → WebSocket subscribers."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from notifier.hub import Hub
from notifier.websocket import websocket_api
from shared.domain.envelope import EventEnvelope
from shared.domain.events import EVENT_TYPES
from shared.logging import configure_logging
from shared.messaging.delivery import subscribe
from shared.service.asyncapi import asyncapi_api
from shared.service.docs import mount_docs
from shared.service.ops import ops_api, runtime_readiness
from shared.service.runtime import make_broker, running
from shared.settings import Settings

FEED_PREFETCH = 512


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings, service="notifier")
    broker = make_broker(settings, prefetch=FEED_PREFETCH)
    replica = uuid.uuid4().hex[:12]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(settings, broker) as runtime:
            hub = Hub(runtime.store, max_buffer=settings.ws_subscriber_buffer)
            await hub.start()

            async def feed(envelope: EventEnvelope) -> None:
                hub.offer(envelope)

            subscriber = subscribe(
                broker,
                runtime.topology.notifier(replica),
                dict.fromkeys(EVENT_TYPES, feed),
                prefetch=FEED_PREFETCH,
                consumer="notifier",
                exchange=runtime.topology.events,
            )
            runtime.consuming(subscriber)
            await broker.start()
            runtime.spawn(hub.watch_head(), "hub-head")
            app.state.runtime = runtime
            app.include_router(websocket_api(hub, runtime.store))
            yield

    app = FastAPI(
        title="Order notifier", lifespan=lifespan, docs_url=None, redoc_url=None
    )

    app.include_router(ops_api(runtime_readiness(app)))
    app.include_router(asyncapi_api(settings.broker_namespace))
    mount_docs(app)
    return app


def run() -> None:
    settings = Settings()
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.notifier_port,
        log_config=None,
    )
