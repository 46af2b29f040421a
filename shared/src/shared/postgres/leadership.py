"""Leader election through a PostgreSQL session advisory lock.

Only the process holding the lock does the work (relay, projections, the chain's
lander). The lock lives as long as the dedicated session, so a killed leader
releases it the moment its connection drops and a standby takes over.
"""

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import psycopg

from shared.metrics import LEADER_LOCK_TRIES
from shared.postgres.connections import (
    SERVER_NOTICES_A_VANISHED_CLIENT,
    to_live_primary,
)

logger = logging.getLogger(__name__)

Session = psycopg.AsyncConnection[tuple[object, ...]]

# How often a leader makes sure its lock session is still alive.
LEADERSHIP_CHECK_S = 1.0
RETRY_S = 1.0


def lock_key(name: str) -> int:
    """A stable 63-bit advisory lock key for a name."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest) >> 1


class Leader:
    """The session holding the lock, as the work running under it sees it."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._checked = time.monotonic()

    async def still_leading(self) -> None:
        """Raise if the lock session is gone; checks at most once a second.

        A dead session means another process may lead now, so the work stops.
        """
        if time.monotonic() - self._checked >= LEADERSHIP_CHECK_S:
            await self._session.execute("SELECT 1")
            self._checked = time.monotonic()


Work = Callable[[Leader], Awaitable[None]]


async def lead_forever(
    conninfo: str,
    name: str,
    work: Work,
    *,
    on_change: Callable[[bool], None] | None = None,
) -> None:
    """Compete for lock ``name`` forever; run ``work`` while holding it.

    ``work`` runs until it fails (or its leadership is lost); then the lock is let
    go and, after a pause, competed for again. ``on_change`` hears every change.
    """
    while True:
        try:
            async with leadership(conninfo, name) as session:
                if on_change is not None:
                    on_change(True)
                logger.info("leading", extra={"kind": "leader", "lock": name})
                await work(Leader(session))
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception(
                "leader stopped; retrying",
                extra={"kind": "leader_error", "lock": name},
            )
        finally:
            if on_change is not None:
                on_change(False)
        await asyncio.sleep(RETRY_S)


@contextlib.asynccontextmanager
async def leadership(
    conninfo: str, name: str, *, retry_s: float = RETRY_S
) -> AsyncIterator[Session]:
    """Wait until this process holds lock ``name``; yield the session holding it.

    A standby holds no connection while it waits: it connects, tries, and lets go.
    """
    key = lock_key(name)
    held, refused = (
        LEADER_LOCK_TRIES.labels(lock=name, outcome=outcome)
        for outcome in ("held", "refused")
    )
    while True:
        session = await psycopg.AsyncConnection.connect(
            to_live_primary(conninfo), autocommit=True
        )
        try:
            await session.execute(SERVER_NOTICES_A_VANISHED_CLIENT)
            cursor = await session.execute("SELECT pg_try_advisory_lock(%s)", (key,))
            row = await cursor.fetchone()
            if row is not None and row[0]:
                held.inc()
                yield session
                return
            refused.inc()
        finally:
            await session.close()
        await asyncio.sleep(retry_s)
