"""Landing notices for the executor's unit tests: one every 10 ms."""

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Ticks:
    async def wait(self, timeout: float) -> None:
        await asyncio.sleep(min(timeout, 0.01))


@contextlib.asynccontextmanager
async def ticking() -> AsyncIterator[Ticks]:
    """What a fake chain's ``landings()`` gives: the watch polls at once."""
    yield Ticks()
