"""Group commit: requests that arrive while a batch is on its way go in the next one.

Appends serialize on the store's counter lock, which is held through each
transaction's commit flush, so separate transactions never share a flush. Sending
the appends that queued up during one transaction as the next transaction lets
them share its round trip, its lock hand-over and its flush. Nothing waits for a
batch to fill: a request that finds no batch on its way goes at once, so a lone
append costs what it did, and batches grow only as fast as requests queue.
"""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Request = TypeVar("Request")
Outcome = TypeVar("Outcome")

Send = Callable[[Sequence[Request]], Awaitable[Sequence[Outcome | Exception]]]
"""Sends one batch; returns one outcome per request, in order: a result, or the
error that request alone failed with. Raising fails every request of the batch."""


class GroupCommit(Generic[Request, Outcome]):
    def __init__(
        self, send: Send[Request, Outcome], *, max_batch: int, max_in_flight: int = 1
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be at least 1")
        self._send = send
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: deque[tuple[Request, asyncio.Future[Outcome]]] = deque()
        self._sending = 0
        self._senders: set[asyncio.Task[None]] = set()  # kept from the collector

    async def submit(self, request: Request) -> Outcome:
        """The request's outcome, once the batch it went in has been sent.

        A caller cancelled before its batch goes is left out of it; one cancelled
        later may still have its request carried out, as with any cancelled query.
        """
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        if self._sending < self._max_in_flight:
            # Counted here and uncounted by the sender itself, with no await
            # between its last look at the queue and that: a request queued in
            # between is never left without a sender.
            self._sending += 1
            sender = asyncio.create_task(self._send_queued())
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        return await future

    async def _send_queued(self) -> None:
        batch: list[tuple[Request, asyncio.Future[Outcome]]] = []
        try:
            while self._queue:
                batch = self._take_batch()
                if not batch:
                    continue
                try:
                    outcomes = await self._send([request for request, _ in batch])
                except Exception as e:
                    for _, future in batch:
                        _settle(future, e)
                    continue
                if len(outcomes) != len(batch):
                    error = RuntimeError(
                        f"a batch of {len(batch)} got {len(outcomes)} outcomes"
                    )
                    outcomes = [error] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    _settle(future, outcome)
                batch = []
        except asyncio.CancelledError:
            # The loop is shutting down: nobody may be left waiting on a sender
            # that is gone.
            for _, future in [*batch, *self._queue]:
                future.cancel()
            self._queue.clear()
            raise
        finally:
            self._sending -= 1

    def _take_batch(self) -> list[tuple[Request, asyncio.Future[Outcome]]]:
        batch: list[tuple[Request, asyncio.Future[Outcome]]] = []
        while self._queue and len(batch) < self._max_batch:
            request, future = self._queue.popleft()
            if not future.done():  # its caller was cancelled while it queued
                batch.append((request, future))
        return batch


def _settle(future: "asyncio.Future[Outcome]", outcome: "Outcome | Exception") -> None:
    if future.done():
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
