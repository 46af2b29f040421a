"""The hub: puts every event in global order and fans it out to subscribers.

Events reach the notifier over RabbitMQ, possibly out of order across orders and
possibly with some missing (a queue lost in a broker restart). Global positions
are dense and commit-ordered, so a missing position always means "not received
yet": the hub holds later events back, fills a hole from the store once it has
lasted ``hole_timeout``, and polls the store's head so a lost last event is found
too. Subscribers therefore see every event exactly once, in order.
"""

import asyncio
import contextlib
import logging
from collections import defaultdict, deque
from collections.abc import Iterator
from typing import Final
from uuid import UUID

from pydantic import ValidationError

from shared.domain.envelope import EventEnvelope
from shared.eventstore.port import EventStore, RawEvent
from shared.eventstore.unknown import PassedOver
from shared.metrics import HUB_LAG

logger = logging.getLogger(__name__)

_FILL_BATCH = 1000


class SlowSubscriberError(Exception):
    """The subscriber did not keep up; it must reconnect and resume."""


class Subscription:
    """A bounded buffer of events for one WebSocket connection.

    A deque and one waiting future rather than an ``asyncio.Queue``: with
    thousands of subscribers every event is offered thousands of times, and the
    queue's bookkeeping per item is most of what an offer would cost.
    """

    def __init__(self, order_id: UUID | None, *, max_buffer: int) -> None:
        self.order_id = order_id
        # The cursor a client cut off for falling behind resumes from: the last
        # version (one order) or position (the firehose) its push has sent.
        self.sent_through = 0
        self._buffer: deque[EventEnvelope] = deque()
        self.max_buffer = max_buffer
        self._waiter: asyncio.Future[None] | None = None
        self.overflow = asyncio.Event()
        self.rejoined = asyncio.Event()
        self._store_reads = 0

    @property
    def overflowed(self) -> bool:
        return self.overflow.is_set()

    def rejoin(self) -> None:
        """Take events again after an overflow; the caller reads what it missed
        from the store (a firehose detaches while it does)."""
        self._buffer.clear()
        self.overflow.clear()
        self.rejoined.set()

    @property
    def reading_store(self) -> bool:
        """Whether its push is waiting on the store, not on its client."""
        return self._store_reads > 0

    @contextlib.contextmanager
    def store_read(self) -> Iterator[None]:
        self._store_reads += 1
        try:
            yield
        finally:
            self._store_reads -= 1

    def offer(self, envelope: EventEnvelope) -> None:
        if self.overflowed:
            return
        if len(self._buffer) >= self.max_buffer:
            # Never let a client that does not read stall the others or grow memory:
            # it is offered nothing more until its push takes the overflow up.
            self.rejoined.clear()
            self.overflow.set()
        else:
            self._buffer.append(envelope)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self) -> list[EventEnvelope]:
        """Every event buffered so far (waiting for the first), oldest first.

        Taking the whole backlog per wake-up keeps a burst of events to one task
        switch per subscriber rather than one per event.
        """
        while not self._buffer:
            if self.overflowed:
                raise SlowSubscriberError
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        batch = list(self._buffer)
        self._buffer.clear()
        return batch


# What the held map answers for a position not there yet (None is a pass-over).
_ABSENT: Final = object()


class Hub:
    def __init__(
        self,
        store: EventStore,
        *,
        hole_timeout: float = 0.15,
        head_poll: float = 1.0,
        max_buffer: int = 1024,
        catch_up_reads: int = 4,
    ) -> None:
        self._store = store
        self._hole_timeout = hole_timeout
        self._head_poll = head_poll
        self._max_buffer = max_buffer
        self.watermark = 0
        # None: a position this release cannot show (an event type it does not
        # know, recorded by a newer one); in order, it is passed over.
        self._held: dict[int, EventEnvelope | None] = {}
        self._by_order: dict[UUID, set[Subscription]] = defaultdict(set)
        self._firehose: set[Subscription] = set()
        self._filling = asyncio.Lock()
        self._hole_timer: asyncio.TimerHandle | None = None
        self._fills: set[asyncio.Task[None]] = set()
        self._passed_over = PassedOver("notifier hub")
        # Firehoses catching up from the store (resuming far behind, or many at
        # once after a burst past their buffers) take turns, so they never hold
        # every pooled connection that filling a hole needs.
        self.catch_up_reads = asyncio.Semaphore(catch_up_reads)

    async def start(self) -> None:
        self.watermark = await self._store.head_position()

    @property
    def subscriber_count(self) -> int:
        return len(self._firehose) + sum(len(s) for s in self._by_order.values())

    def subscribe(self, order_id: UUID | None) -> Subscription:
        subscription = self.subscription(order_id)
        self.attach(subscription)
        return subscription

    def subscription(self, order_id: UUID | None) -> Subscription:
        """A subscription that receives nothing until it is attached."""
        return Subscription(order_id, max_buffer=self._max_buffer)

    def attach(self, subscription: Subscription) -> None:
        if subscription.order_id is None:
            self._firehose.add(subscription)
        else:
            self._by_order[subscription.order_id].add(subscription)

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription.order_id is None:
            self._firehose.discard(subscription)
            return
        subscribers = self._by_order.get(subscription.order_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._by_order[subscription.order_id]

    def offer(self, envelope: EventEnvelope) -> None:
        """Take an event from the broker (or the store); emit what is now in order."""
        self._hold(envelope.global_position, envelope)

    def pass_over(self, position: int) -> None:
        """Let the watermark pass ``position`` without showing what it holds."""
        self._hold(position, None)

    def _hold(self, position: int, envelope: EventEnvelope | None) -> None:
        if position <= self.watermark:
            return
        self._held[position] = envelope
        while (next_one := self._held.pop(self.watermark + 1, _ABSENT)) is not _ABSENT:
            self.watermark += 1
            if isinstance(next_one, EventEnvelope):  # not a pass-over
                self._emit(next_one)
        if self._held and self._hole_timer is None:
            loop = asyncio.get_running_loop()
            self._hole_timer = loop.call_later(self._hole_timeout, self._schedule_fill)

    def _emit(self, envelope: EventEnvelope) -> None:
        for subscription in self._firehose:
            subscription.offer(envelope)
        for subscription in self._by_order.get(envelope.order_id, ()):
            subscription.offer(envelope)

    def _schedule_fill(self) -> None:
        self._hole_timer = None
        task = asyncio.create_task(self.fill())
        self._fills.add(task)  # keep a reference until it is done
        task.add_done_callback(self._fills.discard)
        task.add_done_callback(_log_failure)

    async def fill(self) -> None:
        """Read from the store whatever lies after the watermark."""
        async with self._filling:
            while True:
                batch = await self._store.read_all_raw(
                    self.watermark, limit=_FILL_BATCH
                )
                for event in batch:
                    envelope = readable(event, self._passed_over)
                    if envelope is None:
                        self.pass_over(event.global_position)
                    else:
                        self.offer(envelope)
                if len(batch) < _FILL_BATCH:
                    return

    async def watch_head(self) -> None:
        """Find events the broker never delivered (the last one before a restart)."""
        while True:
            await asyncio.sleep(self._head_poll)
            with contextlib.suppress(Exception):
                head = await self._store.head_position()
                HUB_LAG.set(max(0, head - self.watermark))
                if head > self.watermark:
                    await asyncio.sleep(self._hole_timeout)
                    await self.fill()


def readable(
    event: RawEvent, passed_over: PassedOver | None = None
) -> EventEnvelope | None:
    """``event`` parsed, or None when it is to be passed over, noted in
    ``passed_over`` (the hub's fill; a firehose catching up meets what the hub
    has already logged and counted, and passes it over quietly).

    Beyond a newer release's type or field, that is any event that does not parse
    (a value this release does not know, a corrupt row): the notifier only shows
    events, and stopping at one would stop every subscriber of every order for
    good.
    """
    try:
        envelope = event.known()
    except ValidationError as error:
        if passed_over is not None:
            passed_over.broken(event, error)
        return None
    if envelope is None and passed_over is not None:
        passed_over.note(event)
    return envelope


def _log_failure(task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("filling from the store failed", exc_info=task.exception())
