"""The Solana chain as the executor sees it: port, transaction bytes, simulator."""

from shared.chain.port import (
    Blockhash,
    Chain,
    ChainUnavailableError,
    SignatureStatus,
    TxExpired,
    TxLanded,
    TxPending,
    TxUnknown,
)
from shared.chain.transaction import (
    InvalidTransactionError,
    SignedTransaction,
    build_swap_transaction,
    decode_transaction,
)

__all__ = [
    "Blockhash",
    "Chain",
    "ChainUnavailableError",
    "InvalidTransactionError",
    "SignatureStatus",
    "SignedTransaction",
    "TxExpired",
    "TxLanded",
    "TxPending",
    "TxUnknown",
    "build_swap_transaction",
    "decode_transaction",
]
