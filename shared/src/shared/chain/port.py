"""The chain port: the RPC calls the executor needs, and their answers."""

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from shared.domain.quotes import RouteLeg
from shared.domain.retry import FailureClass


class ChainUnavailableError(Exception):
    """The RPC could not be reached or did not answer.

    For ``send_transaction`` this is ambiguous: the chain may or may not have the
    bytes. Resending the same bytes is safe; signing new ones is not.
    """


@dataclass(frozen=True, slots=True)
class Blockhash:
    blockhash: str
    last_valid_block_height: int


@dataclass(frozen=True, slots=True)
class TxPending:
    """The chain has the transaction; it has not landed yet."""


@dataclass(frozen=True, slots=True)
class TxLanded:
    """Landed in ``slot``. ``ok=False`` means it landed failed: fee paid, no swap.

    Amounts are in token units and are what moved (zero when not ``ok``).
    """

    slot: int
    ok: bool
    error: FailureClass | None
    amount_in: Decimal
    amount_out: Decimal
    legs: tuple[RouteLeg, ...]


@dataclass(frozen=True, slots=True)
class TxExpired:
    """Its blockhash expired before it landed: it will never land."""


@dataclass(frozen=True, slots=True)
class TxUnknown:
    """The chain never received it (or not yet: the send may have been lost)."""


SignatureStatus = TxPending | TxLanded | TxExpired | TxUnknown


class Notices(Protocol):
    async def wait(self, timeout: float) -> None:  # noqa: ASYNC109 - a bounded wait by design
        """Return when something may have changed, or after ``timeout`` seconds."""
        ...


class Chain(Protocol):
    async def latest_blockhash(self) -> Blockhash: ...

    async def send_transaction(self, encoded: str) -> str: ...

    async def signature_statuses(
        self, signatures: Sequence[str]
    ) -> list[SignatureStatus]: ...

    async def block_height(self) -> int: ...

    def landings(self) -> AbstractAsyncContextManager[Notices]:
        """Hints that transactions landed or expired (a slot subscription, say):
        statuses are worth asking for again. Not a delivery: poll after each."""
        ...
