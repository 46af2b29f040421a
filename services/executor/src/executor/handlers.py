"""Executing an order attempt: build and record the transaction, then see it land.

``RouteSelected`` → re-quote if the route went stale, build and sign one
transaction and record it (``TransactionSubmitted``) *before* anything is sent;
then send those exact bytes, rebroadcast them until the chain has them, and watch
the signature until it lands or its blockhash expires. The ``RouteSelected``
message stays unacknowledged until the outcome is recorded, so an executor killed
mid-watch hands it to another, which finds the attempt submitted and resumes
watching the recorded signature. Only an outcome lets a new attempt sign anything
new, so an order can never land two swaps. A starting executor also reconciles
every order left in flight.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import TypeVar
from uuid import UUID

from executor.confirmations import Confirmations
from shared.chain.port import (
    Chain,
    ChainUnavailableError,
    SignatureStatus,
    TxExpired,
    TxLanded,
    TxPending,
    TxUnknown,
)
from shared.chain.transaction import build_swap_transaction
from shared.domain.envelope import Cause, CauseRef, EventEnvelope, event_id_for
from shared.domain.events import (
    OrderStatus,
    RouteSelected,
    TransactionSubmitted,
)
from shared.domain.order import (
    OrderState,
    Phase,
    decide_attempt_failed,
    decide_confirm,
    decide_submit,
)
from shared.domain.pairs import SUPPORTED_PAIRS
from shared.domain.quotes import RoutePlan, VenueQuote
from shared.domain.retry import FailureClass, RetryPolicy, RpcBackoff
from shared.domain.routing import InsufficientLiquidityError
from shared.domain.staleness import drifted_too_far, route_expired
from shared.eventstore.orders import KnownOrder, Orders
from shared.logging import annotate
from shared.messaging.delivery import TRANSIENT
from shared.venues.port import QuoteUnavailableError
from shared.venues.quoting import Quoting

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A failed RPC call or a briefly unreachable store: try again, never re-sign.
TRANSIENT_RPC: tuple[type[BaseException], ...] = (ChainUnavailableError, *TRANSIENT)


class AttemptFailedError(Exception):
    def __init__(self, failure: FailureClass, reason: str) -> None:
        super().__init__(reason)
        self.failure = failure
        self.reason = reason


class ExecuteOrders:
    def __init__(
        self,
        *,
        orders: Orders,
        chain: Chain,
        confirmations: Confirmations,
        quoting: Quoting,
        policy: RetryPolicy,
        rebroadcast_s: float,
        poll_s: float,
        rpc_retries: int = 3,
    ) -> None:
        self._orders = orders
        self._chain = chain
        self._confirmations = confirmations
        self._quoting = quoting
        self._policy = policy
        self._rebroadcast_s = rebroadcast_s
        self._poll_s = poll_s
        self._rpc_backoff = RpcBackoff(max_s=poll_s)
        self._rpc_retries = max(1, rpc_retries)
        # One watch per signature in this process, whoever started it (a delivery
        # or reconciliation); everyone who needs its outcome awaits the same task.
        self._watches: dict[str, asyncio.Task[None]] = {}

    # --- RouteSelected: build and record -----------------------------------------

    async def on_route_selected(self, cause: EventEnvelope) -> None:
        routed = cause.event
        assert isinstance(routed, RouteSelected)  # noqa: S101 - the queue binding guarantees it
        order = await self._orders.read(cause.order_id)
        if order is None or order.state.attempt != routed.attempt:
            return
        state = order.state
        if state.phase is Phase.SUBMITTED:
            # Redelivered: whoever held this message died before the outcome.
            await self._resume(order, cause)
            return
        if state.phase is not Phase.ROUTED:
            return
        try:
            fresh = await self._fresh_route(state, routed, cause.recorded_at)
            blockhash = await self._with_rpc_retries(self._chain.latest_blockhash)
        except AttemptFailedError as failed:
            await self._fail(order, cause, failed.failure, failed.reason)
            return
        except ChainUnavailableError as error:
            await self._fail(
                order, cause, FailureClass.NETWORK_ERROR, f"no blockhash: {error}"
            )
            return
        requoted, fresh_plan = fresh if fresh is not None else ((), None)
        plan = fresh_plan or routed.plan
        transaction = build_swap_transaction(
            order_id=state.order_id,
            attempt=state.attempt,
            pair=SUPPORTED_PAIRS[state.spec.token_pair],
            side=state.spec.side,
            plan=plan,
            blockhash=blockhash.blockhash,
            last_valid_block_height=blockhash.last_valid_block_height,
        )
        attempt = state.attempt
        order, _ = await self._orders.decide(
            state.order_id,
            lambda s: decide_submit(
                s,
                attempt=attempt,
                signature=transaction.signature,
                blockhash=blockhash.blockhash,
                last_valid_block_height=blockhash.last_valid_block_height,
                signed_transaction=transaction.encoded,
                requoted=requoted,
                plan=fresh_plan,
            ),
            cause=cause,
            known=order,
        )
        # Whatever was recorded first (ours, or a racing replica's) is sent.
        if order.state.phase is Phase.SUBMITTED and order.state.attempt == attempt:
            await self._resume(order, cause)

    async def _resume(self, order: KnownOrder, routed: Cause) -> None:
        """Send and watch the attempt's recorded transaction until its outcome.

        Returns only once the outcome is recorded, so the delivery that called it
        is acknowledged only then, even when reconciliation started the watch.
        """
        tx = order.state.transaction
        assert tx is not None  # noqa: S101 - SUBMITTED always has its transaction
        correlation_id = routed.correlation_id
        # Shielded: a cancelled delivery (shutdown) must not stop a shared watch.
        await asyncio.shield(self._watch_task(order, tx, correlation_id))

    def _watch_task(
        self, order: KnownOrder, tx: TransactionSubmitted, correlation_id: UUID
    ) -> "asyncio.Task[None]":
        task = self._watches.get(tx.signature)
        if task is None:
            cause = _submission(order.state.order_id, tx, correlation_id)
            task = asyncio.create_task(self._watch(order, tx, cause))
            self._watches[tx.signature] = task
            task.add_done_callback(lambda _: self._watches.pop(tx.signature, None))
            task.add_done_callback(_log_failed_watch)
        return task

    async def _fresh_route(
        self, state: OrderState, routed: RouteSelected, routed_at: datetime
    ) -> tuple[tuple[VenueQuote, ...], RoutePlan] | None:
        """Fresh quotes and plan once the routed plan expired; None while it holds."""
        if not route_expired(
            routed.quotes,
            routed.plan,
            routed_at=routed_at,
            validity=self._quoting.validity,
            now=datetime.now(UTC),
        ):
            return None
        try:
            quotes, plan = await self._quoting.quote_and_plan(state.spec)
        except QuoteUnavailableError as error:
            raise AttemptFailedError(
                FailureClass.QUOTE_UNAVAILABLE, f"re-quote failed: {error}"
            ) from None
        except InsufficientLiquidityError as error:
            raise AttemptFailedError(
                FailureClass.INSUFFICIENT_LIQUIDITY, str(error)
            ) from None
        if drifted_too_far(
            routed.plan,
            plan,
            side=state.spec.side,
            slippage_bps=state.spec.slippage_bps,
        ):
            raise AttemptFailedError(
                FailureClass.QUOTE_EXPIRED,
                "the route went stale and the fresh quote moved past half the"
                " slippage tolerance",
            )
        return quotes, plan

    # --- send and watch -----------------------------------------------------------

    async def reconcile(self, order_ids: Iterable[UUID]) -> int:
        """Check every in-flight order's signature once; keep watching the rest.

        What that one check finds final (landed, failed, expired) is recorded
        before this returns. The rest are watched in the background until their
        outcome: those still pending, and those the check could not settle (the
        chain or the store did not answer). Returns how many orders were found in
        flight.
        """
        in_flight: list[tuple[KnownOrder, TransactionSubmitted, Cause]] = []
        for order_id in order_ids:
            history = await self._orders.history(order_id)
            order = KnownOrder.of(history)
            if order is None or order.state.phase is not Phase.SUBMITTED:
                continue
            tx = order.state.transaction
            assert tx is not None  # noqa: S101 - SUBMITTED always has its transaction
            cause = _submission(order_id, tx, history[-1].correlation_id)
            in_flight.append((order, tx, cause))
        if not in_flight:
            return 0
        try:
            statuses = await self._chain.signature_statuses(
                [tx.signature for _, tx, _ in in_flight]
            )
        except TRANSIENT_RPC:
            statuses = [TxPending()] * len(in_flight)
        except Exception:
            # One unreadable status must not keep the executor from starting:
            # the watches ask one by one, and only that order's fails.
            logger.exception("in-flight statuses unreadable; watching each")
            statuses = [TxPending()] * len(in_flight)

        async def settle_or_watch(
            order: KnownOrder,
            tx: TransactionSubmitted,
            cause: Cause,
            status: SignatureStatus,
        ) -> None:
            with contextlib.suppress(*TRANSIENT):
                if await self._settle(order, tx, status, cause):
                    return
            self._watch_task(order, tx, cause.correlation_id)

        # At once: an unknown signature's check waits for a whole poll, and
        # one after another a backlog would hold consuming back for minutes.
        results = await asyncio.gather(
            *(
                settle_or_watch(order, tx, cause, status)
                for (order, tx, cause), status in zip(in_flight, statuses, strict=True)
            ),
            return_exceptions=True,
        )
        for (order, _, _), result in zip(in_flight, results, strict=True):
            if isinstance(result, Exception):
                # One order's failure is no reason to keep the executor from
                # serving the rest: its watch, or a redelivery, tries again.
                logger.error(
                    "reconciling an order failed",
                    exc_info=result,
                    extra={
                        "kind": "reconcile_failed",
                        "order_id": str(order.state.order_id),
                    },
                )
        return len(in_flight)

    async def _watch(
        self, order: KnownOrder, tx: TransactionSubmitted, cause: Cause
    ) -> None:
        next_broadcast = 0.0
        failed_sends = 0
        while True:
            now = time.monotonic()
            if now >= next_broadcast:
                if await self._broadcast(order.state, tx):
                    failed_sends = 0
                    next_broadcast = now + self._rebroadcast_s
                else:
                    # A send that failed is tried again at the first status poll
                    # after its back-off, not after a whole rebroadcast interval.
                    # The status is still asked meanwhile: a node refusing sends
                    # may answer it, and the bytes may have landed or expired.
                    failed_sends += 1
                    backoff_s = self._rpc_backoff.delay_s(failed_sends)
                    next_broadcast = time.monotonic() + backoff_s
            try:
                status = await self._confirmations.next_status(tx.signature)
                if await self._settle(order, tx, status, cause):
                    return
            except TRANSIENT:
                # The store or the chain is briefly away: the signature is still
                # the only one allowed, so keep watching it.
                logger.warning(
                    "cannot settle yet; retrying",
                    extra={
                        "kind": "settle_retry",
                        "order_id": str(order.state.order_id),
                    },
                )
                await asyncio.sleep(self._poll_s)

    async def _broadcast(self, state: OrderState, tx: TransactionSubmitted) -> bool:
        """Send the recorded bytes; False if the send did not go through."""
        try:
            await self._chain.send_transaction(tx.signed_transaction)
        except TRANSIENT_RPC:
            # Ambiguous: the chain may or may not have the bytes. Resending the
            # same bytes later is harmless; signing new ones is not.
            logger.debug(
                "send failed; will rebroadcast",
                extra={"kind": "rebroadcast", "order_id": str(state.order_id)},
            )
            return False
        return True

    async def _settle(
        self,
        order: KnownOrder,
        tx: TransactionSubmitted,
        status: SignatureStatus,
        cause: Cause,
    ) -> bool:
        """Record a final answer about the signature. True if it was final."""
        match status:
            case TxLanded(ok=True):
                await self._confirm(order, tx, status, cause)
                return True
            case TxLanded(ok=False):
                failure = status.error or FailureClass.SLIPPAGE_EXCEEDED
                await self._fail(
                    order, cause, failure, f"{failure} on chain at slot {status.slot}"
                )
                return True
            case TxExpired():
                await self._fail(
                    order,
                    cause,
                    FailureClass.BLOCKHASH_EXPIRED,
                    f"not landed before block height {tx.last_valid_block_height}",
                )
                return True
            case TxUnknown():
                after = await self._status_past_validity(tx)
                if isinstance(after, TxUnknown):
                    # The chain never got the bytes and their blockhash has
                    # expired: they can never land, so a new attempt may sign
                    # new ones.
                    await self._fail(
                        order,
                        cause,
                        FailureClass.BLOCKHASH_EXPIRED,
                        "never reached the chain before block height "
                        f"{tx.last_valid_block_height}",
                    )
                    return True
                if after is not None:
                    # The chain had the bytes after all: what it did with them
                    # (expired or landed) is the outcome and its reason.
                    return await self._settle(order, tx, after, cause)
        return False

    async def _status_past_validity(
        self, tx: TransactionSubmitted
    ) -> SignatureStatus | None:
        """The status read once past the last valid height; None before it.

        The height is read first: from then on the chain refuses these bytes, and
        never lands any it only sees later (a send whose commit stalled), so a
        status read afterwards that still does not know them is final, even if
        another executor was rebroadcasting them meanwhile. That status comes
        from the next batched poll, which starts after this call asks for it.
        """
        try:
            if await self._confirmations.block_height() <= tx.last_valid_block_height:
                return None
        except ChainUnavailableError:
            return None
        return await self._confirmations.next_status(tx.signature)

    # --- outcomes ----------------------------------------------------------------

    async def _confirm(
        self,
        order: KnownOrder,
        tx: TransactionSubmitted,
        landed: TxLanded,
        cause: Cause,
    ) -> None:
        state = order.state
        _, recorded = await self._orders.decide(
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
            known=order,
        )
        if not recorded:  # another replica, or an earlier delivery, recorded it
            return
        annotate(signature=tx.signature, slot=landed.slot)
        logger.debug(
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
        order: KnownOrder,
        cause: Cause,
        failure: FailureClass,
        reason: str,
    ) -> None:
        state = order.state
        attempt, phase = state.attempt, state.phase
        decided, recorded = await self._orders.decide(
            state.order_id,
            lambda s: decide_attempt_failed(
                s,
                attempt=attempt,
                phase=phase,
                failure=failure,
                reason=reason,
                policy=self._policy,
            ),
            cause=cause,
            known=order,
        )
        if not recorded:  # another replica, or an earlier delivery, recorded it
            return
        new_state = decided.state
        annotate(
            attempt=attempt,
            failure=failure.value,
            reason=reason,
            final=new_state.status is OrderStatus.FAILED,
        )
        logger.debug(
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
        for failures in range(1, self._rpc_retries):
            try:
                return await call()
            except ChainUnavailableError:
                await asyncio.sleep(self._rpc_backoff.delay_s(failures))
        return await call()


def _submission(
    order_id: UUID, tx: TransactionSubmitted, correlation_id: UUID
) -> Cause:
    """The recorded ``TransactionSubmitted``: the cause of the attempt's outcome.

    Its id is deterministic, so the outcome names it without reading it back.
    """
    return CauseRef(
        event_id=event_id_for(order_id, tx.type, tx.attempt),
        correlation_id=correlation_id,
    )


def _log_failed_watch(task: "asyncio.Task[None]") -> None:
    """A watch that reconciliation started has no delivery to re-raise its error
    (one a delivery awaits is parked too): the log is where it shows."""
    if not task.cancelled() and (error := task.exception()) is not None:
        logger.error(
            "watch failed; the order stays submitted until it is redelivered or"
            " the executor restarts",
            exc_info=error,
            extra={"kind": "watch_failed"},
        )
