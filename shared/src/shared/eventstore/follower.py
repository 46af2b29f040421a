"""Following the global log: one leader-elected reader per subscriber name.

The relay and every projection are followers. A follower reads the store after
its checkpoint, in global-position order, and hands each batch to ``handle``,
which does the work and advances the checkpoint (a projection in the same
transaction as its rows; the relay after its publisher confirms). Only the holder
of the subscriber's advisory lock follows, wherever replicas run; a standby takes
over as soon as the leader's session drops.
"""

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from shared.domain.envelope import EventEnvelope
from shared.eventstore.checkpoints import Checkpoints
from shared.eventstore.leadership import Session, leadership, still_leader
from shared.eventstore.listener import Wakeups
from shared.eventstore.port import EventStore

logger = logging.getLogger(__name__)

Handle = Callable[[Sequence[EventEnvelope]], Awaitable[None]]

# How often an idle leader makes sure its lock session is still alive.
LEADERSHIP_CHECK_S = 1.0


def lock_key(subscriber: str) -> int:
    """A stable 63-bit advisory lock key for a subscriber name."""
    digest = hashlib.blake2b(subscriber.encode(), digest_size=8).digest()
    return int.from_bytes(digest) >> 1


class Follower:
    def __init__(
        self,
        *,
        subscriber: str,
        conninfo: str,
        store: EventStore,
        checkpoints: Checkpoints,
        handle: Handle,
        poll_s: float = 0.2,
        batch_size: int = 500,
    ) -> None:
        self.subscriber = subscriber
        self._conninfo = conninfo
        self._store = store
        self._checkpoints = checkpoints
        self._handle = handle
        self._poll_s = poll_s
        self._batch_size = batch_size
        self.is_leader = False
        self.handled = 0

    async def run(self) -> None:
        """Compete for leadership forever; follow the log while leader."""
        while True:
            try:
                async with leadership(
                    self._conninfo, lock_key(self.subscriber)
                ) as session:
                    self.is_leader = True
                    logger.info(
                        "following the store",
                        extra={"kind": "leader", "subscriber": self.subscriber},
                    )
                    await self._follow(session)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception(
                    "follower stopped; retrying",
                    extra={"kind": "follower_error", "subscriber": self.subscriber},
                )
            finally:
                self.is_leader = False
            await asyncio.sleep(1.0)

    async def _follow(self, session: Session) -> None:
        async with Wakeups(self._conninfo) as wakeups:
            position = await self._checkpoints.get(self.subscriber)
            checked = time.monotonic()
            while True:
                batch = await self._store.read_all(position, self._batch_size)
                if batch:
                    await self._handle(batch)
                    position = batch[-1].global_position
                    self.handled += len(batch)
                    if len(batch) == self._batch_size:
                        continue  # a backlog: read on at once
                # A short batch was the end of the log when read; anything
                # appended since has notified, so the wait returns at once.
                if time.monotonic() - checked >= LEADERSHIP_CHECK_S:
                    # A dead session means another replica may lead now: stop.
                    await still_leader(session)
                    checked = time.monotonic()
                await wakeups.wait(self._poll_s)

    async def position(self) -> int:
        """The checkpoint, as committed (the same on every replica)."""
        return await self._checkpoints.get(self.subscriber)

    async def wait_until(self, position: int) -> None:
        """Wait until the checkpoint reaches ``position`` (bound it with a timeout)."""
        while await self.position() < position:  # noqa: ASYNC110 - the leader may be another process
            await asyncio.sleep(self._poll_s / 2)
