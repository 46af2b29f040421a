"""Leader election through a PostgreSQL session advisory lock.

Only the process holding the lock does the work (relay, projections). The lock
lives as long as the dedicated session, so a killed leader releases it the moment
its connection drops and a standby takes over.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import psycopg


@contextlib.asynccontextmanager
async def leadership(
    conninfo: str, key: int, *, retry_s: float = 1.0
) -> AsyncIterator[psycopg.AsyncConnection[tuple[object, ...]]]:
    """Wait until this process holds lock ``key``; yield the session holding it."""
    async with await psycopg.AsyncConnection.connect(
        conninfo, autocommit=True
    ) as session:
        while True:
            cursor = await session.execute("SELECT pg_try_advisory_lock(%s)", (key,))
            row = await cursor.fetchone()
            if row is not None and row[0]:
                break
            await asyncio.sleep(retry_s)
        yield session


async def still_leader(session: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
    """Raise if the session that holds the lock is gone."""
    await session.execute("SELECT 1")
