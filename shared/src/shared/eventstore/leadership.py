"""Leader election through a PostgreSQL session advisory lock.

Only the process holding the lock does the work (relay, projections, the chain's
lander). The lock lives as long as the dedicated session, so a killed leader
releases it the moment its connection drops and a standby takes over.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import psycopg

Session = psycopg.AsyncConnection[tuple[object, ...]]


@contextlib.asynccontextmanager
async def leadership(
    conninfo: str, key: int, *, retry_s: float = 1.0
) -> AsyncIterator[Session]:
    """Wait until this process holds lock ``key``; yield the session holding it.

    A standby holds no connection while it waits: it connects, tries, and lets go.
    """
    while True:
        session = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
        try:
            cursor = await session.execute("SELECT pg_try_advisory_lock(%s)", (key,))
            row = await cursor.fetchone()
            if row is not None and row[0]:
                yield session
                return
        finally:
            await session.close()
        await asyncio.sleep(retry_s)


async def still_leader(session: Session) -> None:
    """Raise if the session that holds the lock is gone."""
    await session.execute("SELECT 1")
