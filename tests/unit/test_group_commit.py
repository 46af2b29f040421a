"""Group commit: requests queued while a batch is on its way go in the next one."""

import asyncio
from collections.abc import Sequence

import pytest

from shared.eventstore.group_commit import GroupCommit


class Sender:
    """Records each batch; holds it until released when ``hold`` is set."""

    def __init__(self, *, hold: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        if not hold:
            self.release.set()
        self.fail_batch: Exception | None = None

    async def __call__(self, batch: Sequence[int]) -> list[int | Exception]:
        self.batches.append(list(batch))
        await self.release.wait()
        if self.fail_batch is not None:
            raise self.fail_batch
        return [ValueError(f"odd {n}") if n % 2 else n * 10 for n in batch]


async def first_batch_then_queued(
    group: GroupCommit[int, int], first: int, *queued: int
) -> tuple["asyncio.Task[int]", list["asyncio.Task[int]"]]:
    """``first``'s batch on its way, then the other requests queued behind it."""
    on_its_way = asyncio.create_task(group.submit(first))
    await asyncio.sleep(0)
    behind = [asyncio.create_task(group.submit(n)) for n in queued]
    await asyncio.sleep(0)
    return on_its_way, behind


async def test_a_lone_request_goes_at_once_in_a_batch_of_its_own() -> None:
    sender = Sender()
    group = GroupCommit(sender, max_batch=8)

    assert await asyncio.wait_for(group.submit(2), 1) == 20
    assert sender.batches == [[2]]


async def test_requests_queued_during_a_batch_go_together_in_the_next() -> None:
    sender = Sender(hold=True)
    group = GroupCommit(sender, max_batch=3)
    first, rest = await first_batch_then_queued(group, 0, 2, 4, 6, 8)

    sender.release.set()
    results = await asyncio.wait_for(asyncio.gather(first, *rest), 1)

    assert results == [0, 20, 40, 60, 80]
    assert sender.batches == [[0], [2, 4, 6], [8]]


async def test_each_request_has_its_own_outcome_and_a_failed_send_fails_its_batch() -> (
    None
):
    sender = Sender(hold=True)
    group = GroupCommit(sender, max_batch=8)
    lone, (even, odd) = await first_batch_then_queued(group, 2, 4, 5)

    sender.release.set()
    assert await lone == 20
    assert await even == 40
    with pytest.raises(ValueError, match="odd 5"):
        await odd

    sender.fail_batch = ConnectionError("server gone")
    with pytest.raises(ConnectionError):
        await group.submit(6)
    sender.fail_batch = None
    assert await group.submit(8) == 80  # the next batch goes on


async def test_a_caller_cancelled_while_queued_is_left_out_of_the_batch() -> None:
    sender = Sender(hold=True)
    group = GroupCommit(sender, max_batch=8)
    first, (gone, kept) = await first_batch_then_queued(group, 0, 2, 4)
    gone.cancel()

    sender.release.set()

    assert list(await asyncio.wait_for(asyncio.gather(first, kept), 1)) == [0, 40]
    assert sender.batches == [[0], [4]]


async def test_no_more_batches_are_in_flight_than_allowed() -> None:
    sender = Sender(hold=True)
    group = GroupCommit(sender, max_batch=1, max_in_flight=2)
    tasks = [asyncio.create_task(group.submit(n)) for n in (0, 2, 4, 6)]
    await asyncio.sleep(0.01)

    assert len(sender.batches) == 2
    sender.release.set()
    assert await asyncio.wait_for(asyncio.gather(*tasks), 1) == [0, 20, 40, 60]


async def test_a_request_made_as_the_last_batch_settles_is_never_stranded() -> None:
    """The caller whose result ends a batch submits again before the sender has
    finished: its request must still find a sender."""
    group = GroupCommit(Sender(), max_batch=8)

    for n in range(0, 200, 2):
        assert await asyncio.wait_for(group.submit(n), 1) == n * 10
