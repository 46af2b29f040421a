"""Wake-ups for readers tailing a table: LISTEN on a channel, as a hint only."""

import asyncio
import logging
from types import TracebackType
from typing import Self

import psycopg
from psycopg import sql

from shared.postgres.connections import to_live_primary

logger = logging.getLogger(__name__)


class Wakeups:
    """Sleep until ``channel`` is notified (something may be new), or until a timeout.

    Notifications are not durable: any lost during a reconnect are simply gone. So
    ``wait`` is a cheaper poll interval, never a delivery mechanism: callers read
    from their own position after every return, whatever woke them. It returns
    early after a reconnect too, since something may have been missed meanwhile.

    The connection is dedicated: ``notifies()`` holds its lock while waiting, so
    it could not serve queries anyway. One waiting task per instance.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        channel: str,
    ) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def wait(self, timeout: float) -> None:  # noqa: ASYNC109 - the wait *is* the point
        """Return at a notification, after a reconnect, or after ``timeout`` seconds."""
        conn = self._conn
        if conn is None or conn.closed:
            await self._connect(pause=timeout)
            return
        try:
            async for _ in conn.notifies(timeout=timeout, stop_after=1):
                pass
            # A burst of appends leaves a backlog; one wake-up stands for all of it.
            async for _ in conn.notifies(timeout=0):
                pass
        except psycopg.OperationalError:
            logger.warning(
                "lost the %s listener connection; reconnecting", self._channel
            )
            await self.close()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def _connect(self, pause: float) -> None:
        try:
            conn = await psycopg.AsyncConnection.connect(
                to_live_primary(self._conninfo),
                autocommit=True,
            )
            await conn.execute(
                sql.SQL("LISTEN {}").format(sql.Identifier(self._channel))
            )
        except psycopg.OperationalError as e:
            logger.warning("cannot listen on %s (%s); polling only", self._channel, e)
            await asyncio.sleep(pause)
            return
        self._conn = conn
