"""Examples for the OpenAPI document: one per request body and per response.

Swagger UI shows them and schema-driven clients (and fuzzers) start from them, so
each one is a real answer of the API; ``tests/unit/test_contracts.py`` validates
the bodies against their response models.
"""

from typing import Any, Final

from shared.domain.pairs import SUPPORTED_PAIRS
from shared.service import app

# What every service answers (503) while the event store is unreachable.
STORE_UNAVAILABLE: Final = app.STORE_UNAVAILABLE

ORDER_ID: Final = "3f0d8a4e-5b7c-4e21-9a3f-7c1d2e4b5a60"
BUY_ORDER_ID: Final = "8c2b6f1a-0d3e-5a47-b9c8-1e2f3a4b5c6d"
CREATED_AT: Final = "2026-11-26T10:15:02.118000Z"
UPDATED_AT: Final = "2026-11-26T10:15:04.902000Z"
SIGNATURE: Final = (
    "4vJ9JU1bJJE96FWSJKvHsmmFADCg4gpZQff4P3bkLKi6"
    "Nq5NQyEYYsQ4v2gXQVnmU4A8aS6o3bNBPgZxwrwJKXo"
)

SELL_ORDER: Final[dict[str, Any]] = {
    "amount": 10,
    "tokenPair": "SOL-USDC",
    "type": "market",
}
BUY_ORDER: Final[dict[str, Any]] = {
    "amount": 250000,
    "tokenPair": "BONK-SOL",
    "type": "market",
    "side": "buy",
    "slippageBps": 100,
    "clientOrderId": "desk-7:2026-11-26:0042",
}

EXECUTE_BODY_EXAMPLES: Final[dict[str, dict[str, Any]]] = {
    "sell": {
        "summary": "Sell exactly 10 SOL for USDC (ExactIn, default slippage)",
        "value": SELL_ORDER,
    },
    "buy": {
        "summary": "Buy exactly 250 000 BONK, idempotent by clientOrderId",
        "description": "Sending the same body again returns the same order"
        " (200, `Idempotent-Replayed: true`).",
        "value": BUY_ORDER,
    },
}


def _links(order_id: str) -> dict[str, str]:
    return {
        "self": f"/api/orders/{order_id}",
        "events": f"/api/orders/{order_id}/events",
        "ws": f"ws://localhost:3001/ws/orders/{order_id}",
    }


RECEIPT_ACCEPTED: Final = {
    "orderId": ORDER_ID,
    "status": "pending",
    "links": _links(ORDER_ID),
}
RECEIPT_REPLAYED: Final = {
    "orderId": BUY_ORDER_ID,
    "status": "confirmed",
    "links": _links(BUY_ORDER_ID),
}
CONFLICT: Final = {
    "detail": "idempotency key 'desk-7:2026-11-26:0042' (clientOrderId or"
    " Idempotency-Key) was already used for another order"
}
AT_CAPACITY: Final = {
    "detail": "engine at capacity: 87 orders in flight, limit 87; retry in 2.5 s"
    " (with the same clientOrderId, it is safe)"
}
TOO_LARGE: Final = {"detail": "request body too large: 20480 bytes, limit 16384"}
NOT_JSON: Final = {
    "detail": "Content-Type must be application/json,"
    " got 'application/x-www-form-urlencoded'"
}
INVALID: Final = {
    "detail": [
        {
            "type": "greater_than",
            "loc": ["body", "amount"],
            "msg": "Input should be greater than 0",
            "input": -5,
            "ctx": {"gt": 0},
        },
        {
            "type": "value_error",
            "loc": ["body", "tokenPair"],
            "msg": "Value error, unsupported pair 'DOGE-USDC'; supported pairs: "
            + ", ".join(SUPPORTED_PAIRS),
            "input": "DOGE-USDC",
        },
    ]
}
NOT_FOUND: Final = {"detail": f"order {ORDER_ID} not found"}

_QUOTES: Final = [
    {
        "venue": "raydium",
        "inAmount": "10",
        "outAmount": "1843.215077",
        "minAmountOut": "1834.000001",
        "maxAmountIn": "10.05",
        "fee": "0.025",
        "priceImpactPct": "0.000412",
        "slot": 48213,
        "expiresAt": "2026-11-26T10:15:04.340000Z",
    },
    {
        "venue": "meteora",
        "inAmount": "10",
        "outAmount": "1841.907311",
        "minAmountOut": "1832.697774",
        "maxAmountIn": "10.05",
        "fee": "0.031",
        "priceImpactPct": "0.000388",
        "slot": 48213,
        "expiresAt": "2026-11-26T10:15:04.340000Z",
    },
]
_PLAN: Final = {
    "legs": [
        {
            "venue": "raydium",
            "bps": 10000,
            "inAmount": "10",
            "outAmount": "1843.215077",
        }
    ],
    "inAmount": "10",
    "outAmount": "1843.215077",
    "minAmountOut": "1834.000001",
    "maxAmountIn": "10",
    "gainBpsOverBestSingle": "0",
    "reason": "raydium alone gives 1843.215077 USDC, 7.1 bps more than meteora;"
    " no split beats it by more than 1 bp",
}

ORDER: Final = {
    "orderId": ORDER_ID,
    "status": "confirmed",
    "orderType": "market",
    "tokenPair": "SOL-USDC",
    "side": "sell",
    "amount": "10",
    "slippageBps": 50,
    "clientOrderId": None,
    "attempt": 1,
    "quotes": _QUOTES,
    "routePlan": _PLAN,
    "txHash": SIGNATURE,
    "finalPrice": "184.3198",
    "amountIn": "10",
    "amountOut": "1843.198",
    "quotedAmountOut": "1843.215077",
    "failures": [],
    "failureReason": None,
    "version": 5,
    "createdAt": CREATED_AT,
    "updatedAt": UPDATED_AT,
}

EVENTS: Final = {
    "events": [
        {
            "orderId": ORDER_ID,
            "status": "pending",
            "type": "OrderAccepted",
            "version": 1,
            "position": 1041,
            "at": "2026-11-26T10:15:02.118000Z",
            "orderType": "market",
            "tokenPair": "SOL-USDC",
            "side": "sell",
            "amount": "10",
            "slippageBps": 50,
            "clientOrderId": None,
        },
        {
            "orderId": ORDER_ID,
            "status": "routing",
            "type": "RoutingStarted",
            "version": 2,
            "position": 1042,
            "at": "2026-11-26T10:15:02.131000Z",
            "attempt": 1,
        },
        {
            "orderId": ORDER_ID,
            "status": "confirmed",
            "type": "SwapConfirmed",
            "version": 5,
            "position": 1049,
            "at": UPDATED_AT,
            "attempt": 1,
            "txHash": SIGNATURE,
            "slot": 48217,
            "amountIn": "10",
            "amountOut": "1843.198",
            "finalPrice": "184.3198",
            "quotedAmountIn": "10",
            "quotedAmountOut": "1843.215077",
            "legs": [
                {
                    "venue": "raydium",
                    "bps": 10000,
                    "inAmount": "10",
                    "outAmount": "1843.198",
                }
            ],
            "venue": "raydium",
        },
    ]
}

ORDER_LIST: Final = {
    "orders": [
        {
            "orderId": ORDER_ID,
            "status": "confirmed",
            "tokenPair": "SOL-USDC",
            "side": "sell",
            "amount": "10",
            "venue": "raydium 100%",
            "finalPrice": "184.3198",
            "txHash": SIGNATURE,
            "attempts": 1,
            "failureReason": None,
            "version": 5,
            "createdAt": CREATED_AT,
            "updatedAt": UPDATED_AT,
        },
        {
            "orderId": BUY_ORDER_ID,
            "status": "failed",
            "tokenPair": "BONK-SOL",
            "side": "buy",
            "amount": "250000",
            "venue": None,
            "finalPrice": None,
            "txHash": None,
            "attempts": 1,
            "failureReason": "INSUFFICIENT_LIQUIDITY is not retryable",
            "version": 3,
            "createdAt": CREATED_AT,
            "updatedAt": UPDATED_AT,
        },
    ],
    "asOfPosition": 1049,
    # The request asked for limit=2: there may be more.
    "nextCursor": (
        "MjAyNi0xMS0yNlQxMDoxNTowMi4xMTgwMDArMDA6MDB8"
        "OGMyYjZmMWEtMGQzZS01YTQ3LWI5YzgtMWUyZjNhNGI1YzZk"
    ),
}

PAIRS: Final = {"pairs": list(SUPPORTED_PAIRS)}
CONFIG: Final = {"notifierUrl": "ws://localhost:3001"}


def json_example(description: str, example: object) -> dict[str, Any]:
    """A ``responses`` entry whose JSON body has one example."""
    return {
        "description": description,
        "content": {"application/json": {"example": example}},
    }
