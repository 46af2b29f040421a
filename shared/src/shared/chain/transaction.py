"""Building, signing and decoding swap transactions: pure, deterministic bytes.

The signed bytes are a canonical JSON swap instruction; the signature is base58 of
a 64-byte hash of them, as long as a real ed25519 signature. The same instruction
always gives the same bytes and signature, so resending is idempotent, while a new
attempt or a new blockhash gives a new signature.
"""

import base64
import hashlib
from dataclasses import dataclass
from uuid import UUID

from pydantic import TypeAdapter, ValidationError

from shared.chain.base58 import b58encode
from shared.domain.pairs import Pair, Side
from shared.domain.quotes import RoutePlan, Venue

_MAGIC = b"oe-swap-v1\n"  # a version tag, so other bytes never decode as a swap


class InvalidTransactionError(ValueError):
    """The bytes are not a swap transaction this chain understands."""


@dataclass(frozen=True, slots=True)
class SwapLeg:
    """One venue's share: ``amount_raw`` is what the leg fixes (in for a sell, out
    for a buy); ``quoted_raw`` is the other side as quoted, for the record."""

    venue: Venue
    bps: int
    amount_raw: int
    quoted_raw: int


@dataclass(frozen=True, slots=True)
class SwapInstruction:
    """What the swap program is asked to do, with its slippage bound in raw units."""

    order_id: UUID
    attempt: int
    pair: str
    side: Side
    legs: tuple[SwapLeg, ...]
    min_amount_out_raw: int
    max_amount_in_raw: int
    blockhash: str
    last_valid_block_height: int


@dataclass(frozen=True, slots=True)
class SignedTransaction:
    signature: str
    encoded: str
    instruction: SwapInstruction


_INSTRUCTION = TypeAdapter(SwapInstruction)


def build_swap_transaction(
    *,
    order_id: UUID,
    attempt: int,
    pair: Pair,
    side: Side,
    plan: RoutePlan,
    blockhash: str,
    last_valid_block_height: int,
) -> SignedTransaction:
    """Build and sign the swap for ``plan``; the fixed side of each leg is exact."""
    in_token, out_token = pair.in_and_out(side)
    legs = tuple(
        SwapLeg(
            venue=leg.venue,
            bps=leg.bps,
            amount_raw=in_token.to_raw(leg.in_amount)
            if side is Side.SELL
            else out_token.to_raw(leg.out_amount),
            quoted_raw=out_token.to_raw(leg.out_amount)
            if side is Side.SELL
            else in_token.to_raw(leg.in_amount),
        )
        for leg in plan.legs
    )
    instruction = SwapInstruction(
        order_id=order_id,
        attempt=attempt,
        pair=pair.symbol,
        side=side,
        legs=legs,
        min_amount_out_raw=out_token.to_raw(plan.min_amount_out),
        max_amount_in_raw=in_token.to_raw(plan.max_amount_in, round_up=True),
        blockhash=blockhash,
        last_valid_block_height=last_valid_block_height,
    )
    return sign(instruction)


def sign(instruction: SwapInstruction) -> SignedTransaction:
    signed = _MAGIC + _INSTRUCTION.dump_json(instruction)
    return SignedTransaction(
        signature=signature_of(signed),
        encoded=base64.b64encode(signed).decode("ascii"),
        instruction=instruction,
    )


def signature_of(signed: bytes) -> str:
    return b58encode(hashlib.blake2b(signed, digest_size=64).digest())


def decode_transaction(encoded: str) -> tuple[str, SwapInstruction]:
    """``(signature, instruction)`` of base64 signed bytes."""
    try:
        signed = base64.b64decode(encoded, validate=True)
    except ValueError as e:
        raise InvalidTransactionError("not base64") from e
    if not signed.startswith(_MAGIC):
        raise InvalidTransactionError("not a swap transaction")
    try:
        instruction = _INSTRUCTION.validate_json(signed[len(_MAGIC) :])
    except ValidationError as e:
        raise InvalidTransactionError(f"malformed instruction: {e}") from e
    return signature_of(signed), instruction
