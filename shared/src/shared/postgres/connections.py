"""How every connection to PostgreSQL notices a peer that vanished.

A server host that dies, or a network partition, closes nothing: without these
the kernel notices only after about 15 minutes of retransmissions, and every
query on the connection (an append, a leader's check, a LISTEN) waits as long.
Keepalives find a dead peer while a connection idles, ``tcp_user_timeout`` (ms)
while a query waits for its answer: an error within ~30 s either way.
"""

from psycopg.conninfo import conninfo_to_dict, make_conninfo

_DEAD_PEER_DETECTION = {
    "keepalives": 1,
    "keepalives_idle": 15,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}


def detecting_dead_peers(conninfo: str) -> str:
    """``conninfo`` with the settings above (where it does not set its own)."""
    given = conninfo_to_dict(conninfo).keys()
    return make_conninfo(
        conninfo,
        **{k: v for k, v in _DEAD_PEER_DETECTION.items() if k not in given},
    )
