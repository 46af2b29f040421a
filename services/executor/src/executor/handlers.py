"""Executing an order attempt: build and record the transaction, then see it land.

``RouteSelected`` → build and sign one transaction and record it
(``TransactionSubmitted``) *before* anything is sent. ``TransactionSubmitted`` →
send those exact bytes, rebroadcast them until the chain has them, and watch the
signature until it lands or its blockhash expires. Only then may a new attempt
sign anything new, so an order can never land two swaps. A restarted executor
gets the unacknowledged ``TransactionSubmitted`` again and resumes watching the
same signature.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from shared.chain.port import (
    Chain,
    ChainUnavailableError,
    TxExpired,
    TxLanded,
    TxPending,
    TxUnknown,
)
from shared.chain.transaction import build_swap_transaction
from shared.domain.envelope import EventEnvelope
from shared.domain.events import OrderStatus, RouteSelected, TransactionSubmitted
from shared.domain.order import (
    OrderState,
    Phase,
    decide_attempt_failed,
    decide_confirm,
    decide_submit,
)
from shared.domain.pairs import SUPPORTED_PAIRS
from shared.domain.retry import FailureClass, RetryPolicy
from shared.eventstore.orders import Orders

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ExecuteOrders:
    def __init__(
        self,
        *,
        orders: Orders,
        chain: Chain,
        policy: RetryPolicy,
        rebroadcast_s: float,
        poll_s: float,
        rpc_retries: int = 3,
    ) -> None:
        self._orders = orders
        self._chain = chain
        self._policy = policy
        self._rebroadcast_s = rebroadcast_s
        self._poll_s = poll_s
        self._rpc_retries = rpc_retries

    async def on_route_selected(self, cause: EventEnvelope) -> None:
        routed = cause.event
        assert isinstance(routed, RouteSelected)  # noqa: S101 - the queue binding guarantees it
        state = await self._orders.load(cause.order_id)
        if (
            state is None
            or state.phase is not Phase.ROUTED
            or state.attempt != routed.attempt
        ):
            return
        if _route_expired(routed, now=datetime.now(UTC)):
            await self._fail(
                state,
                cause,
                FailureClass.QUOTE_EXPIRED,
                "route went stale before building",
            )
            return
        try:
            blockhash = await self._with_rpc_retries(self._chain.latest_blockhash)
        except ChainUnavailableError as error:
            await self._fail(
                state, cause, FailureClass.NETWORK_ERROR, f"no blockhash: {error}"
            )
            return
        transaction = build_swap_transaction(
            order_id=state.order_id,
            attempt=state.attempt,
            pair=SUPPORTED_PAIRS[state.spec.token_pair],
            side=state.spec.side,
            plan=routed.plan,
            blockhash=blockhash.blockhash,
            last_valid_block_height=blockhash.last_valid_block_height,
        )
        attempt = state.attempt
        await self._orders.decide(
            state.order_id,
            lambda s: decide_submit(
                s,
                attempt=attempt,
                signature=transaction.signature,
                blockhash=blockhash.blockhash,
                last_valid_block_height=blockhash.last_valid_block_height,
                signed_transaction=transaction.encoded,
            ),
            cause=cause,
        )

    async def on_transaction_submitted(self, cause: EventEnvelope) -> None:
        submitted = cause.event
        assert isinstance(submitted, TransactionSubmitted)  # noqa: S101
        state = await self._orders.load(cause.order_id)
        if (
            state is None
            or state.phase is not Phase.SUBMITTED
            or state.transaction is None
            or state.transaction.signature != submitted.signature
        ):
            return
        await self._see_it_land(state, submitted, cause)

    async def _see_it_land(
        self, state: OrderState, tx: TransactionSubmitted, cause: EventEnvelope
    ) -> None:
        next_broadcast = 0.0
        while True:
            now = time.monotonic()
            if now >= next_broadcast:
                next_broadcast = now + self._rebroadcast_s
                try:
                    await self._chain.send_transaction(tx.signed_transaction)
                except ChainUnavailableError:
                    # Ambiguous: the chain may or may not have the bytes. Resending
                    # the same bytes later is harmless; signing new ones is not.
                    logger.info(
                        "send failed; will rebroadcast",
                        extra={"kind": "rebroadcast", "order_id": str(state.order_id)},
                    )
            try:
                status = await self._chain.signature_status(tx.signature)
            except ChainUnavailableError:
                status = TxPending()
            match status:
                case TxLanded(ok=True):
                    await self._confirm(state, tx, status, cause)
                    return
                case TxLanded(ok=False):
                    failure = status.error or FailureClass.SLIPPAGE_EXCEEDED
                    await self._fail(
                        state,
                        cause,
                        failure,
                        f"{failure} on chain at slot {status.slot}",
                    )
                    return
                case TxExpired():
                    await self._fail(
                        state,
                        cause,
                        FailureClass.BLOCKHASH_EXPIRED,
                        f"not landed before block height {tx.last_valid_block_height}",
                    )
                    return
                case TxUnknown():
                    # The chain never got the bytes. Once their blockhash is past its
                    # last valid height they can never land: only then may a new
                    # attempt sign anything.
                    if await self._past_valid_height(tx):
                        await self._fail(
                            state,
                            cause,
                            FailureClass.BLOCKHASH_EXPIRED,
                            "never reached the chain before block height "
                            f"{tx.last_valid_block_height}",
                        )
                        return
                    next_broadcast = min(
                        next_broadcast, time.monotonic() + self._poll_s
                    )
            await asyncio.sleep(self._poll_s)

    async def _past_valid_height(self, tx: TransactionSubmitted) -> bool:
        try:
            return await self._chain.block_height() > tx.last_valid_block_height
        except ChainUnavailableError:
            return False

    async def _confirm(
        self,
        state: OrderState,
        tx: TransactionSubmitted,
        landed: TxLanded,
        cause: EventEnvelope,
    ) -> None:
        await self._orders.decide(
            state.order_id,
            lambda s: decide_confirm(
                s,
                signature=tx.signature,
                slot=landed.slot,
                amount_in=landed.amount_in,
                amount_out=landed.amount_out,
                legs=landed.legs,
            ),
            cause=cause,
        )
        logger.info(
            "swap confirmed",
            extra={
                "kind": "SwapConfirmed",
                "order_id": str(state.order_id),
                "signature": tx.signature,
                "slot": landed.slot,
            },
        )

    async def _fail(
        self,
        state: OrderState,
        cause: EventEnvelope,
        failure: FailureClass,
        reason: str,
    ) -> None:
        attempt = state.attempt
        new_state, _ = await self._orders.decide(
            state.order_id,
            lambda s: decide_attempt_failed(
                s, attempt=attempt, failure=failure, reason=reason, policy=self._policy
            ),
            cause=cause,
        )
        logger.info(
            "attempt failed",
            extra={
                "kind": "AttemptFailed",
                "order_id": str(state.order_id),
                "attempt": attempt,
                "failure": failure,
                "reason": reason,
                "final": new_state.status is OrderStatus.FAILED,
            },
        )

    async def _with_rpc_retries(self, call: Callable[[], Awaitable[T]]) -> T:
        for remaining in range(self._rpc_retries, 0, -1):
            try:
                return await call()
            except ChainUnavailableError:
                if remaining == 1:
                    raise
                await asyncio.sleep(self._poll_s)
        raise AssertionError("unreachable")


def _route_expired(routed: RouteSelected, *, now: datetime) -> bool:
    return any(
        quote.expires_at < now
        for quote in routed.quotes
        if quote.venue in {leg.venue for leg in routed.plan.legs}
    )
