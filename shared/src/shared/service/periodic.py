"""Background work done at a steady pace for the life of a process."""

import asyncio
import logging
from collections.abc import Awaitable, Callable


async def every(
    interval_s: float,
    step: Callable[[], Awaitable[object]],
    *,
    cannot: str,
    log: logging.Logger,
    wait_first: bool = False,
) -> None:
    """Run ``step`` every ``interval_s``, forever.

    A step that fails is tried again at the next tick; the failure is logged
    ("cannot <cannot>") once per run of failures, not at every tick, so an outage
    does not flood the log. Only cancellation ends it: a task that ended would
    fail the service's readiness check.
    """
    failing = False
    if wait_first:
        await asyncio.sleep(interval_s)
    while True:
        try:
            await step()
        except Exception:
            if not failing:
                log.warning("cannot %s", cannot, exc_info=True)
            failing = True
        else:
            failing = False
        await asyncio.sleep(interval_s)
