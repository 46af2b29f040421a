"""Tokens and the pairs the engine trades."""

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal
from enum import StrEnum


class Side(StrEnum):
    """Which amount of a swap the order fixes.

    ``sell`` (ExactIn) spends exactly ``amount`` of the base token; ``buy`` (ExactOut)
    receives exactly ``amount`` of the base token.
    """

    SELL = "sell"
    BUY = "buy"


@dataclass(frozen=True, slots=True)
class Token:
    symbol: str
    decimals: int

    def to_raw(self, amount: Decimal, *, round_up: bool = False) -> int:
        """``amount`` in whole raw units: rounded down, or up (``round_up``) where a
        bound must not be undercut by rounding."""
        rounding = ROUND_CEILING if round_up else ROUND_DOWN
        return int(amount.scaleb(self.decimals).to_integral_value(rounding))

    def to_units(self, raw: int) -> Decimal:
        """``raw`` units in token units, exactly."""
        return Decimal(raw).scaleb(-self.decimals)


@dataclass(frozen=True, slots=True)
class Pair:
    base: Token
    quote: Token

    @property
    def symbol(self) -> str:
        return f"{self.base.symbol}-{self.quote.symbol}"

    def in_and_out(self, side: Side) -> tuple[Token, Token]:
        """The token a swap on ``side`` spends, and the one it receives."""
        return (self.base, self.quote) if side is Side.SELL else (self.quote, self.base)


SOL = Token("SOL", 9)
USDC = Token("USDC", 6)
USDT = Token("USDT", 6)
JUP = Token("JUP", 6)
BONK = Token("BONK", 5)
MOON = Token("MOON", 6)  # a freshly launched long-tail token

SUPPORTED_PAIRS: dict[str, Pair] = {
    pair.symbol: pair
    for pair in (
        Pair(SOL, USDC),
        Pair(SOL, USDT),
        Pair(JUP, USDC),
        Pair(BONK, SOL),
        Pair(MOON, SOL),
    )
}
