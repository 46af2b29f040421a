"""Swap transactions: deterministic signed bytes, Solana-shaped signatures, decoding."""

import base64
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from shared.chain.base58 import b58decode, b58encode
from shared.chain.transaction import (
    InvalidTransactionError,
    SignedTransaction,
    build_swap_transaction,
    decode_transaction,
)
from shared.domain.pairs import SUPPORTED_PAIRS, Side
from shared.domain.quotes import RouteLeg, RoutePlan, Venue

PAIR = SUPPORTED_PAIRS["SOL-USDC"]
PLAN = RoutePlan(
    legs=(
        RouteLeg(
            venue=Venue.RAYDIUM,
            bps=7_344,
            in_amount=Decimal("1.468769610"),
            out_amount=Decimal("240.1"),
        ),
        RouteLeg(
            venue=Venue.METEORA,
            bps=2_656,
            in_amount=Decimal("0.531230390"),
            out_amount=Decimal("86.9"),
        ),
    ),
    in_amount=Decimal(2),
    out_amount=Decimal("327.0"),
    min_amount_out=Decimal("325.365"),
    max_amount_in=Decimal(2),
    gain_bps_over_best_single=Decimal("1.2"),
    reason="split",
)


def build(
    *,
    order_id: UUID | None = None,
    attempt: int = 1,
    side: Side = Side.SELL,
    blockhash: str = b58encode(bytes(range(32))),
) -> SignedTransaction:
    return build_swap_transaction(
        order_id=order_id or uuid4(),
        attempt=attempt,
        pair=PAIR,
        side=side,
        plan=PLAN,
        blockhash=blockhash,
        last_valid_block_height=150,
    )


def test_signature_looks_like_solana() -> None:
    """A signature is base58 of 64 bytes (87-88 characters), never 0x hex."""
    tx = build()

    assert len(b58decode(tx.signature)) == 64
    assert 86 <= len(tx.signature) <= 88


def test_same_instruction_gives_the_same_bytes() -> None:
    """Building twice signs the same bytes: resending is idempotent."""
    order_id = uuid4()

    assert build(order_id=order_id) == build(order_id=order_id)


def test_new_attempt_or_blockhash_gives_a_new_signature() -> None:
    """Each attempt, and each blockhash, is a different transaction."""
    order_id = uuid4()
    first = build(order_id=order_id)

    assert build(order_id=order_id, attempt=2).signature != first.signature
    assert build(order_id=order_id, blockhash="1" * 32).signature != first.signature


def test_bytes_decode_to_the_swap_instruction() -> None:
    """The chain reads back order, attempt, legs (raw) and the slippage bound."""
    tx = build()

    signature, instruction = decode_transaction(tx.encoded)

    assert signature == tx.signature
    assert instruction == tx.instruction
    assert [leg.amount_raw for leg in instruction.legs] == [1_468_769_610, 531_230_390]
    assert instruction.min_amount_out_raw == 325_365_000
    assert instruction.max_amount_in_raw == 2 * 10**9


def test_buy_legs_fix_the_output() -> None:
    """For a buy each leg's fixed amount is base received; the bound is max in."""
    tx = build(side=Side.BUY)

    assert [leg.amount_raw for leg in tx.instruction.legs] == [
        240_100_000_000,
        86_900_000_000,
    ]
    assert tx.instruction.max_amount_in_raw == 2_000_000


def test_garbage_does_not_decode() -> None:
    """Bytes that are not a swap are refused."""
    with pytest.raises(InvalidTransactionError):
        decode_transaction(base64.b64encode(b"hello").decode())
    with pytest.raises(InvalidTransactionError):
        decode_transaction("not base64!")


@pytest.mark.parametrize("data", [b"", b"\0\0\1", bytes(range(64))])
def test_base58_round_trips(data: bytes) -> None:
    """Leading zero bytes survive as leading ones."""
    assert b58decode(b58encode(data)) == data
