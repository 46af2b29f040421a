"""Composition root of the executor: wires the chain, venues and queue to handlers.

At start the executor first reconciles every order left in flight (recorded
transaction, no outcome) against the chain by signature, then starts consuming.
Every executor also runs the simulated chain's lander; one at a time lands.
"""

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from executor.confirmations import Confirmations
from executor.handlers import ExecuteOrders
from executor.in_flight import InFlight
from shared.chain.simulated import SimulatedChain
from shared.logging import configure_logging
from shared.messaging.delivery import subscribe
from shared.service.app import serve, service_app
from shared.service.runtime import Runtime, make_broker, retry_policy, running
from shared.settings import Settings, load_settings
from shared.venues.simulated import simulated_quoting

logger = logging.getLogger(__name__)

CATCH_UP_TIMEOUT_S = 30
# Landings are announced, so polling is only the fallback for a lost notice: about
# half a slot, within these bounds.
POLL_MIN_S, POLL_MAX_S = 0.05, 0.2


def confirmation_poll_s(settings: Settings) -> float:
    return min(POLL_MAX_S, max(POLL_MIN_S, settings.slot_ms / 2000))


async def reconcile_in_flight(runtime: Runtime, execute: ExecuteOrders) -> None:
    in_flight = InFlight(pool=runtime.pool, checkpoints=runtime.checkpoints)
    follower = runtime.follow(in_flight.subscriber, in_flight.apply)
    head = await runtime.store.head_position()
    try:
        async with asyncio.timeout(CATCH_UP_TIMEOUT_S):
            await follower.wait_until(head)
    except TimeoutError:
        logger.warning(
            "in-flight projection behind; redelivered messages will reconcile the rest",
            extra={"kind": "reconcile_partial"},
        )
    found = await execute.reconcile(await in_flight.orders())
    logger.info(
        "reconciled in-flight orders", extra={"kind": "reconciled", "count": found}
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    configure_logging(settings, service="executor")
    broker = make_broker(settings, prefetch=settings.executor_concurrency)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(settings, broker) as runtime:
            chain = SimulatedChain(runtime.pool, settings, random.Random())
            await chain.ensure_genesis()
            runtime.spawn(chain.run_lander(settings.database_url), "chain-lander")
            poll_s = confirmation_poll_s(settings)
            confirmations = Confirmations(chain, poll_s=poll_s)
            runtime.spawn(confirmations.run(), "confirmations")
            execute = ExecuteOrders(
                orders=runtime.orders,
                chain=chain,
                confirmations=confirmations,
                quoting=simulated_quoting(settings, chain),
                policy=retry_policy(settings),
                rebroadcast_s=settings.rebroadcast_ms / 1000,
                poll_s=poll_s,
            )
            await reconcile_in_flight(runtime, execute)
            subscriber = subscribe(
                broker,
                runtime.topology.executor,
                {"RouteSelected": execute.on_route_selected},
                prefetch=settings.executor_concurrency,
                consumer="executor",
            )
            runtime.consuming(subscriber)
            await broker.start()
            app.state.runtime = runtime
            yield

    return service_app("Order executor", settings, lifespan)


def run() -> None:
    settings = load_settings()
    serve(create_app(settings), settings, settings.executor_http_port)
