"""Watchers share one read of the chain's height per half poll interval."""

import asyncio
from typing import cast

from executor.confirmations import Confirmations
from shared.chain.port import Chain


class _Heights:
    """A chain whose height reads take a moment, counted."""

    def __init__(self) -> None:
        self.reads = 0

    async def block_height(self) -> int:
        self.reads += 1
        await asyncio.sleep(0.01)
        return 100 + self.reads


async def test_fifty_watchers_asking_at_once_cost_one_height_read() -> None:
    """N dropped transactions used to cost N reads of the height every tick."""
    chain = _Heights()
    confirmations = Confirmations(cast("Chain", chain), poll_s=0.2)

    heights = await asyncio.gather(*(confirmations.block_height() for _ in range(50)))
    again = await confirmations.block_height()  # within half an interval

    assert heights == [101] * 50
    assert again == 101
    assert chain.reads == 1


async def test_a_height_older_than_half_an_interval_is_read_again() -> None:
    chain = _Heights()
    confirmations = Confirmations(cast("Chain", chain), poll_s=0.04)

    first = await confirmations.block_height()
    await asyncio.sleep(0.03)
    second = await confirmations.block_height()

    assert (first, second) == (101, 102)
    assert chain.reads == 2
