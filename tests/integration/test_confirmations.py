"""The executor's confirmation loop: one status query answers every watcher."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import psycopg
import pytest

from executor.confirmations import Confirmations
from shared.chain.port import (
    Blockhash,
    ChainUnavailableError,
    SignatureStatus,
    TxExpired,
    TxPending,
    TxUnknown,
)
from shared.chain.simulated import LANDED_CHANNEL
from shared.postgres.wakeups import Wakeups

pytestmark = pytest.mark.integration


class StatusBoard:
    """A chain that only answers status queries, from a dict, and counts them."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self.statuses: dict[str, SignatureStatus] = {}
        self.queries: list[list[str]] = []
        self.unreachable = False
        self.unreadable: str | None = None
        self.store_away = False

    async def signature_statuses(
        self, signatures: Sequence[str]
    ) -> list[SignatureStatus]:
        self.queries.append(list(signatures))
        if self.unreachable:
            raise ChainUnavailableError("RPC unreachable")
        if self.store_away:
            raise psycopg.OperationalError("the store is away")
        if self.unreadable in signatures:
            raise ValueError(f"status of {self.unreadable}: unknown failure class")
        return [self.statuses.get(s, TxUnknown()) for s in signatures]

    async def latest_blockhash(self) -> Blockhash:
        raise NotImplementedError

    async def send_transaction(self, encoded: str) -> str:
        raise NotImplementedError

    async def block_height(self) -> int:
        raise NotImplementedError

    def landings(self) -> Wakeups:
        return Wakeups(self._database_url, channel=LANDED_CHANNEL)


@contextlib.asynccontextmanager
async def running(confirmations: Confirmations) -> AsyncIterator[None]:
    task = asyncio.create_task(confirmations.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def announce_landing(database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(
        database_url, autocommit=True
    ) as conn:
        await conn.execute(f"NOTIFY {LANDED_CHANNEL}")


async def test_one_query_answers_every_waiting_signature(database_url: str) -> None:
    board = StatusBoard(database_url)
    board.statuses = {f"sig{i}": TxPending() for i in range(50)}
    confirmations = Confirmations(board, poll_s=5.0)

    async with running(confirmations):
        answers = await asyncio.gather(
            *(confirmations.next_status(f"sig{i}") for i in range(50))
        )

    assert answers == [TxPending()] * 50
    assert len(board.queries) == 1
    assert sorted(board.queries[0]) == sorted(board.statuses)


async def test_a_landing_notice_answers_before_the_poll_interval(
    database_url: str,
) -> None:
    board = StatusBoard(database_url)
    board.statuses = {"sig": TxPending()}
    confirmations = Confirmations(board, poll_s=30.0)

    async with running(confirmations):
        # Two rounds: after the first the loop connects its listener, after the
        # second it waits for a notice (or 30 s).
        assert await confirmations.next_status("sig") == TxPending()
        assert await confirmations.next_status("sig") == TxPending()
        board.statuses["sig"] = TxExpired()
        waiting = asyncio.create_task(confirmations.next_status("sig"))
        await asyncio.sleep(0.3)
        assert not waiting.done(), "answered without a notice"
        await announce_landing(database_url)
        async with asyncio.timeout(5):
            assert await waiting == TxExpired()


async def test_an_unreachable_chain_answers_pending(database_url: str) -> None:
    board = StatusBoard(database_url)
    board.unreachable = True
    confirmations = Confirmations(board, poll_s=0.05)

    async with running(confirmations):
        async with asyncio.timeout(5):
            assert await confirmations.next_status("sig") == TxPending()


async def test_a_status_that_cannot_be_read_fails_only_its_own_watchers(
    database_url: str,
) -> None:
    """One row the poll cannot read (a newer release's failure class, say) must not
    fail every order in flight: each signature is asked on its own instead."""
    board = StatusBoard(database_url)
    board.statuses = {f"sig{i}": TxExpired() for i in range(5)}
    board.unreadable = "sig3"
    confirmations = Confirmations(board, poll_s=5.0)

    async with running(confirmations):
        answers = await asyncio.gather(
            *(confirmations.next_status(f"sig{i}") for i in range(5)),
            return_exceptions=True,
        )

    assert [type(a) for a in answers] == [TxExpired] * 3 + [ValueError, TxExpired]


async def test_a_store_away_is_one_query_and_every_watcher_hears_it(
    database_url: str,
) -> None:
    """Asked one by one, a store that is away would fail once per signature."""
    board = StatusBoard(database_url)
    board.store_away = True
    confirmations = Confirmations(board, poll_s=5.0)

    async with running(confirmations):
        answers = await asyncio.gather(
            *(confirmations.next_status(f"sig{i}") for i in range(5)),
            return_exceptions=True,
        )

    assert all(isinstance(a, psycopg.OperationalError) for a in answers)
    assert len(board.queries) == 1
