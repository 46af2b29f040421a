"""Composition root of the notifier: broker feed → hub → WebSocket subscribers."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from notifier.hub import Hub
from notifier.websocket import websocket_api
from shared.domain.envelope import EventEnvelope
from shared.domain.events import EVENT_TYPES
from shared.logging import configure_logging
from shared.messaging.delivery import subscribe
from shared.service.app import serve, service_app
from shared.service.runtime import make_broker, running
from shared.settings import Settings, load_settings

FEED_PREFETCH = 512


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    configure_logging(settings, service="notifier")
    broker = make_broker(settings, prefetch=FEED_PREFETCH)
    replica = uuid.uuid4().hex[:12]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(settings, broker) as runtime:
            hub = Hub(
                runtime.store,
                max_buffer=settings.ws_subscriber_buffer,
                catch_up_reads=max(1, settings.db_pool_size // 2),
            )
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

    return service_app("Order notifier", settings, lifespan)


def run() -> None:
    settings = load_settings()
    serve(
        create_app(settings),
        settings,
        settings.notifier_port,
        send_buffer_bytes=settings.ws_send_buffer_bytes,
        stalled_client_timeout_s=settings.ws_stalled_client_timeout_s,
    )
