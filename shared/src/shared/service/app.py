"""The HTTP shell every service shares: ops endpoints, contracts, docs, and serving."""

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import uvicorn
from fastapi import FastAPI

from shared.service.asyncapi import asyncapi_api
from shared.service.docs import mount_docs
from shared.service.ops import ops_api, runtime_readiness
from shared.settings import Settings

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


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
    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(ops_api(runtime_readiness(app)))
    app.include_router(asyncapi_api(settings.broker_namespace))
    mount_docs(app)
    return app


def serve(app: FastAPI, settings: Settings, port: int) -> None:
    uvicorn.run(
        app,
        host=settings.http_host,
        port=port,
        log_config=None,
        # Status frames are a few hundred bytes: compressing each one for each
        # subscriber costs far more CPU than the bytes it saves.
        ws_per_message_deflate=False,
    )
