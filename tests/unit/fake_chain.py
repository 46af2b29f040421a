"""The executor's unit-test harness: landing notices one every 10 ms, and an
executor wired to a fake chain as the service wires it."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from executor.confirmations import Confirmations
from executor.handlers import ExecuteOrders
from shared.chain.port import Chain
from shared.domain.retry import RetryPolicy
from shared.eventstore.memory import InMemoryEventStore
from shared.eventstore.orders import Orders
from shared.venues.quoting import Quoting


class Ticks:
    async def wait(self, timeout: float) -> None:
        await asyncio.sleep(min(timeout, 0.01))


@contextlib.asynccontextmanager
async def ticking() -> AsyncIterator[Ticks]:
    """What a fake chain's ``landings()`` gives: the watch polls at once."""
    yield Ticks()


@contextlib.asynccontextmanager
async def executing(
    chain: Chain, quoting: Quoting
) -> AsyncIterator[tuple[ExecuteOrders, Orders, InMemoryEventStore]]:
    """An executor on an empty store, its confirmation poller running."""
    store = InMemoryEventStore()
    orders = Orders(store)
    confirmations = Confirmations(chain, poll_s=0.01)
    poller = asyncio.create_task(confirmations.run())
    try:
        yield (
            ExecuteOrders(
                orders=orders,
                chain=chain,
                confirmations=confirmations,
                quoting=quoting,
                policy=RetryPolicy(),
                rebroadcast_s=1.0,
                poll_s=0.01,
            ),
            orders,
            store,
        )
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
