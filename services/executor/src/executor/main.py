"""Composition root of the executor: wires the chain and the queue to the handlers."""

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from executor.handlers import ExecuteOrders
from shared.chain.simulated import SimulatedChain
from shared.logging import configure_logging
from shared.messaging.delivery import subscribe
from shared.service.ops import ops_api
from shared.service.runtime import make_broker, retry_policy, running
from shared.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings, service="executor")
    broker = make_broker(settings, prefetch=settings.executor_concurrency)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(
            settings, broker, pool_size=settings.executor_concurrency
        ) as runtime:
            chain = SimulatedChain(runtime.pool, settings, random.Random())
            await chain.ensure_genesis()
            execute = ExecuteOrders(
                orders=runtime.orders,
                chain=chain,
                policy=retry_policy(settings),
                rebroadcast_s=settings.rebroadcast_ms / 1000,
                poll_s=min(0.2, settings.slot_ms / 2000),
            )
            subscribe(
                broker,
                runtime.topology.executor,
                {
                    "RouteSelected": execute.on_route_selected,
                    "TransactionSubmitted": execute.on_transaction_submitted,
                },
                prefetch=settings.executor_concurrency,
            )
            await broker.start()
            app.state.runtime = runtime
            yield

    app = FastAPI(title="Order executor", lifespan=lifespan)

    async def readiness() -> dict[str, bool]:
        return await app.state.runtime.readiness()  # type: ignore[no-any-return]

    app.include_router(ops_api(readiness))
    return app


def run() -> None:
    settings = Settings()
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.executor_http_port,
        log_config=None,
    )
