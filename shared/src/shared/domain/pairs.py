"""Tokens and the pairs the engine trades."""

from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Pair:
    base: Token
    quote: Token

    @property
    def symbol(self) -> str:
        return f"{self.base.symbol}-{self.quote.symbol}"


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
