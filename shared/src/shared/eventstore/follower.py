"""Following the global log: one leader-elected reader per subscriber name.

The relay and every projection are followers. A follower reads the store after
its checkpoint, in global-position order, and hands each batch to ``handle``,
which does the work and advances the checkpoint (a projection in the same
transaction as its rows; the relay after its publisher confirms). Only the holder
of the subscriber's advisory lock follows, wherever replicas run; a standby takes
over as soon as the leader's session drops.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from shared.eventstore.checkpoints import Checkpoints
from shared.eventstore.port import EventStore, RawEvent
from shared.eventstore.postgres import STORE_CHANNEL
from shared.postgres.leadership import Leader, lead_forever
from shared.postgres.wakeups import Wakeups

# Followers take the log as stored: the relay forwards it without parsing, and a
# read model parses the event types it knows (``TableProjection``).
Handle = Callable[[Sequence[RawEvent]], Awaitable[None]]


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
        linger_s: float = 0.0,
    ) -> None:
        self.subscriber = subscriber
        self._conninfo = conninfo
        self._store = store
        self._checkpoints = checkpoints
        self._handle = handle
        self._poll_s = poll_s
        self._batch_size = batch_size
        self._linger_s = linger_s
        self.is_leader = False
        self.handled = 0

    async def run(self) -> None:
        """Compete for leadership forever; follow the log while leader."""
        await lead_forever(
            self._conninfo, self.subscriber, self._follow, on_change=self._leading
        )

    def _leading(self, leading: bool) -> None:
        self.is_leader = leading

    async def _follow(self, leader: Leader) -> None:
        async with Wakeups(self._conninfo, channel=STORE_CHANNEL) as wakeups:
            position = await self._checkpoints.get(self.subscriber)
            while True:
                batch = await self._store.read_all_raw(position, self._batch_size)
                # Before every batch, a backlog's included: a follower whose lock
                # session died must stop, as another process may lead by now.
                await leader.still_leading()
                if batch:
                    await self._handle(batch)
                    position = batch[-1].global_position
                    self.handled += len(batch)
                    if len(batch) == self._batch_size:
                        continue  # a backlog: read on at once
                # A short batch was the end of the log when read; anything
                # appended since has notified, so the wait returns at once.
                await wakeups.wait(self._poll_s)
                if self._linger_s:
                    # Let the events that follow this one arrive: an order's
                    # statuses come milliseconds apart, and one batch for all of
                    # them is one read and one commit instead of one each.
                    await asyncio.sleep(self._linger_s)

    async def position(self) -> int:
        """The checkpoint, as committed (the same on every replica)."""
        return await self._checkpoints.get(self.subscriber)

    async def wait_until(self, position: int) -> None:
        """Wait until the checkpoint reaches ``position`` (bound it with a timeout)."""
        while await self.position() < position:  # noqa: ASYNC110 - the leader may be another process
            await asyncio.sleep(self._poll_s / 2)
