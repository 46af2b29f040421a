"""Each failure class takes its own path, and no order ever lands two swaps."""

import asyncio
import contextlib
import uuid
from collections.abc import Mapping
from typing import Any

import httpx
import psycopg
import pytest

from tests.integration.clients import stream, submit, wait_for_status
from tests.integration.system import System, isolated_system

pytestmark = pytest.mark.integration

ORDER = {"amount": 5, "tokenPair": "SOL-USDC", "type": "market"}


def system_with(
    infrastructure: tuple[str, str], namespace: str, settings: Mapping[str, str]
) -> contextlib.AbstractContextManager[System]:
    return isolated_system(infrastructure, namespace, uuid.uuid4().hex[:6], settings)


def landed_swaps(system: System, order_id: str) -> list[tuple[Any, ...]]:
    """What the chain's ledger says landed for an order (ok or failed)."""
    with psycopg.connect(system.env["DATABASE_URL"]) as conn:
        return conn.execute(
            "SELECT signature, ok FROM chain.ledger WHERE order_id = %s",
            (uuid.UUID(order_id),),
        ).fetchall()


async def test_a_dropped_transaction_expires_before_a_new_one_is_signed(
    infrastructure: tuple[str, str], broker_namespace: str
) -> None:
    """Transactions that never reach the leader expire; 3 attempts, then failed."""
    with system_with(
        infrastructure,
        broker_namespace,
        {"FAULT_DROP_RATE": "1.0", "BLOCKHASH_VALID_SLOTS": "20"},
    ) as system:
        order_id = (await submit(system, ORDER)).json()["orderId"]

        seen = await stream(system, f"/ws/orders/{order_id}", timeout=60)

        assert seen.statuses == [
            "pending",
            *["routing", "building", "submitted"] * 3,
            "failed",
        ]
        assert seen.frames[-1]["failure"] == "BLOCKHASH_EXPIRED"
        submitted = [f for f in seen.frames if f["status"] == "submitted"]
        assert len({f["signature"] for f in submitted}) == 3
        # Each new signature was made only after the previous blockhash expired.
        heights = [f["lastValidBlockHeight"] for f in submitted]
        assert heights == sorted(heights)
        assert landed_swaps(system, order_id) == []


async def test_quotes_that_never_come_fail_the_order_without_sending(
    infrastructure: tuple[str, str], broker_namespace: str
) -> None:
    """No venue answers: routed three times, never built, then failed."""
    with system_with(
        infrastructure, broker_namespace, {"QUOTE_FAILURE_RATE": "1.0"}
    ) as system:
        order_id = (await submit(system, ORDER)).json()["orderId"]

        seen = await stream(system, f"/ws/orders/{order_id}", timeout=60)

        assert seen.statuses == ["pending", "routing", "routing", "routing", "failed"]
        assert seen.frames[-1]["failure"] == "QUOTE_UNAVAILABLE"
        # The reason names what each venue said, for the post-mortem.
        assert "raydium: quote timed out" in seen.frames[-1]["reason"]
        assert "meteora: quote timed out" in seen.frames[-1]["reason"]
        assert [f.get("attempt") for f in seen.frames[1:4]] == [1, 2, 3]
        assert landed_swaps(system, order_id) == []


async def test_a_flaky_network_still_lands_each_order_at_most_once(
    infrastructure: tuple[str, str], broker_namespace: str
) -> None:
    """With a third of RPC calls failing, every order ends and lands at most once."""
    with system_with(
        infrastructure,
        broker_namespace,
        {"FAULT_NETWORK_RATE": "0.3", "QUOTE_FAILURE_RATE": "0.2"},
    ) as system:
        answers = await asyncio.gather(*(submit(system, ORDER) for _ in range(12)))
        order_ids = [a.json()["orderId"] for a in answers]

        finals = await asyncio.gather(
            *(
                wait_for_status(system, i, {"confirmed", "failed"}, timeout=90)
                for i in order_ids
            )
        )

        for order_id, order in zip(order_ids, finals, strict=True):
            swaps = landed_swaps(system, order_id)
            landed_ok = [s for s in swaps if s[1]]
            if order["status"] == "confirmed":
                assert [s[0] for s in landed_ok] == [order["txHash"]]
            else:
                assert landed_ok == []
                assert order["failureReason"]
        assert sum(o["status"] == "confirmed" for o in finals) >= len(finals) // 2


async def test_a_buy_receives_exactly_the_amount_asked(system: System) -> None:
    """side=buy (ExactOut) receives exactly `amount` SOL and pays USDC for it."""
    body = {**ORDER, "amount": 3, "side": "buy"}
    order_id = (await submit(system, body)).json()["orderId"]

    order = await wait_for_status(system, order_id, {"confirmed", "failed"})

    assert order["status"] == "confirmed"
    assert float(order["amountOut"]) == 3
    assert float(order["amountIn"]) > 0
    price = float(order["amountIn"]) / float(order["amountOut"])
    assert float(order["finalPrice"]) == pytest.approx(price)
    async with httpx.AsyncClient(base_url=system.base_url) as client:
        events = (await client.get(f"/api/orders/{order_id}/events")).json()["events"]
    assert events[0]["side"] == "buy"


async def test_a_sell_too_small_to_buy_anything_fails_at_once_with_the_reason(
    system: System,
) -> None:
    """One lamport buys nothing after fees: every venue refuses, no retry, no send."""
    body = {**ORDER, "amount": 0.000000001}
    answer = await submit(system, body)
    assert answer.status_code == 202, answer.text
    order_id = answer.json()["orderId"]

    seen = await stream(system, f"/ws/orders/{order_id}", timeout=30)

    assert seen.statuses == ["pending", "routing", "failed"]
    assert seen.frames[-1]["failure"] == "INSUFFICIENT_LIQUIDITY"
    assert "no venue can fill 0.000000001 SOL (sell)" in seen.frames[-1]["reason"]
    assert landed_swaps(system, order_id) == []
