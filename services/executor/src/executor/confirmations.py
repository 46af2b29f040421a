"""Waiting for signatures: one ``getSignatureStatuses`` call answers every watcher.

A Solana client confirms its transactions with one batched status call per tick,
not one call per transaction. Each watcher asks for the next answer about its
signature; the loop polls when the chain announces landings
(``Chain.landings``) or every ``poll_s`` otherwise, so confirming costs one query per
tick whether one order or hundreds are in flight.
"""

import asyncio
import logging
import time
from collections.abc import Mapping

from shared.chain.port import Chain, ChainUnavailableError, SignatureStatus, TxPending
from shared.domain.retry import RpcBackoff
from shared.messaging.delivery import TRANSIENT

logger = logging.getLogger(__name__)

Waiters = Mapping[str, list[asyncio.Future[SignatureStatus]]]


class Confirmations:
    def __init__(self, chain: Chain, *, poll_s: float) -> None:
        self._chain = chain
        self._poll_s = poll_s
        self._rpc_backoff = RpcBackoff(max_s=poll_s)
        self._failed_polls = 0
        self._waiting: dict[str, list[asyncio.Future[SignatureStatus]]] = {}
        self._asked = asyncio.Event()
        # The last read of the height and when it started: an answer is at least
        # as new as that moment.
        self._height: tuple[float, asyncio.Future[int]] | None = None

    async def block_height(self) -> int:
        """The chain's height, read at most once per half poll interval for every
        watcher that asks.

        Watchers whose signature the chain does not know ask it each tick; N
        dropped transactions would cost N reads a tick. A height read a moment
        ago is never above the chain's: a watcher waits at most that moment
        longer to learn that its bytes expired, never decides too early.
        """
        if self._height is not None:
            started, read = self._height
            answered = read.done() and not read.cancelled() and not read.exception()
            fresh = time.monotonic() - started < self._poll_s / 2
            if not read.done() or (answered and fresh):
                return await asyncio.shield(read)
        read = asyncio.ensure_future(self._chain.block_height())
        self._height = (time.monotonic(), read)
        return await asyncio.shield(read)

    async def next_status(self, signature: str) -> SignatureStatus:
        """The signature's status as of the next poll.

        Raises what the poll raised (the store away, say); a chain that cannot be
        reached answers ``TxPending``: the watcher simply asks again.
        """
        future: asyncio.Future[SignatureStatus] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiting.setdefault(signature, []).append(future)
        self._asked.set()
        return await future

    async def run(self) -> None:
        """Answer watchers forever (one task per executor process)."""
        async with self._chain.landings() as landed:
            while True:
                await self._asked.wait()
                self._asked.clear()
                waiting, self._waiting = self._waiting, {}
                await self._answer(waiting)
                if self._failed_polls:
                    # The node did not answer: ask again within milliseconds
                    # rather than at the next landing or poll.
                    await asyncio.sleep(self._rpc_backoff.delay_s(self._failed_polls))
                    continue
                try:
                    # The next poll waits for a landing, or the interval at most.
                    await landed.wait(self._poll_s)
                except Exception:
                    # Watchers must never wait on a dead loop: poll on a timer.
                    logger.exception("landing notices failed; polling")
                    await asyncio.sleep(self._poll_s)

    async def _answer(self, waiting: Waiters) -> None:
        signatures = list(waiting)
        answers: dict[str, SignatureStatus | Exception]
        try:
            statuses = await self._chain.signature_statuses(signatures)
            answers = dict(zip(signatures, statuses, strict=True))
            self._failed_polls = 0
        except ChainUnavailableError:
            answers = dict.fromkeys(signatures, TxPending())
            self._failed_polls += 1
        except TRANSIENT as error:
            # The store is away or overloaded: asking one by one would only
            # fail N times as slowly. Each watcher decides (they retry).
            answers = dict.fromkeys(signatures, error)
        except Exception as error:
            answers = (
                await self._one_by_one(signatures)
                if len(signatures) > 1
                else {signatures[0]: error}
            )
        for signature, futures in waiting.items():
            answer = answers[signature]
            for future in futures:
                if future.done():
                    continue
                if isinstance(answer, Exception):
                    future.set_exception(answer)
                else:
                    future.set_result(answer)

    async def _one_by_one(
        self, signatures: list[str]
    ) -> dict[str, SignatureStatus | Exception]:
        """Each signature asked on its own: one that cannot be answered (a status
        this release cannot read, say) fails its own watchers, not everyone's."""
        answers: dict[str, SignatureStatus | Exception] = {}
        for signature in signatures:
            try:
                [answers[signature]] = await self._chain.signature_statuses([signature])
            except ChainUnavailableError:
                answers[signature] = TxPending()
            except Exception as error:
                answers[signature] = error
        return answers
