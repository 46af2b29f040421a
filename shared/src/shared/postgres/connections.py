"""How every connection to PostgreSQL reaches a live primary, and notices losing it.

A server host that dies, or a network partition, closes nothing: without these
the kernel notices only after about 15 minutes of retransmissions, and every
query on the connection (an append, a leader's check, a LISTEN) waits as long.
Keepalives find a dead peer while a connection idles, ``tcp_user_timeout`` (ms)
while a query waits for its answer: an error within ~30 s either way.

Neither helps when something between client and server still acknowledges
every packet (a proxy or load balancer that lost its server side): nothing is
ever left unacknowledged. ``answered_within`` bounds one statement's wait for
its answer whatever the network does.

A server that answers but refuses writes (a demoted primary kept up read-only,
a standby) is passed over when connecting, for the URL's next host or an error:
every session of the engine writes.
"""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any, Final

import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict, make_conninfo

_LIVE_PRIMARY: dict[str, str | int] = {
    "keepalives": 1,
    "keepalives_idle": 15,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
    # A host that swallows the connect (a failover's dead address, a proxy with
    # no server behind it) is given up after this, not libpq's ~2 minutes.
    "connect_timeout": 5,
    "target_session_attrs": "read-write",
}

SERVER_NOTICES_A_VANISHED_CLIENT = "; ".join(
    f"SET {server} = {int(_LIVE_PRIMARY[client])}"
    for server, client in (
        ("tcp_keepalives_idle", "keepalives_idle"),
        ("tcp_keepalives_interval", "keepalives_interval"),
        ("tcp_keepalives_count", "keepalives_count"),
        ("tcp_user_timeout", "tcp_user_timeout"),
    )
).encode()
"""The same settings for the server's end of a session, where it holds something for the
session (an advisory lock) while the session sends nothing. A client host that
vanishes (power, a killed VM, a partition) closes nothing, and by the server's
own keepalive settings it would notice after two hours, holding the lock all
that time. Sent as SET, not in the URL's ``options``, which a pooler in between
may refuse."""


def to_live_primary(conninfo: str) -> str:
    """``conninfo`` with the settings above (where it does not set its own)."""
    given = conninfo_to_dict(conninfo).keys()
    return make_conninfo(
        conninfo,
        **{k: v for k, v in _LIVE_PRIMARY.items() if k not in given},
    )


STORE_UNAVAILABLE_ERRORS: Final = (
    psycopg.OperationalError,  # a lost or refused connection, a pool timeout
    # A failover's demoted primary, until the pool reconnects to the new one.
    psycopg.errors.ReadOnlySqlTransaction,
)
"""What a request meets while the store is briefly away: a 503 (HTTP) or a close
to resume from (WebSocket), never a 500."""


class UnansweredError(psycopg.OperationalError):
    """The server did not answer in time, so the connection was dropped: what was
    sent on it may or may not have been carried out, as after any lost
    connection."""


class _AnswerDeadline:
    def __init__(self, conn: AsyncConnection[Any], seconds: float) -> None:
        self.passed = False
        self._conn = conn
        self._timer = asyncio.get_running_loop().call_later(seconds, self._drop)

    def cancel(self) -> None:
        self._timer.cancel()

    def _drop(self) -> None:
        self.passed = True
        if self._conn.closed:
            return
        # On a duplicate of libpq's descriptor: the socket is shut down for both,
        # and libpq alone still closes its own.
        with (
            contextlib.suppress(OSError),
            socket.fromfd(
                self._conn.fileno(), socket.AF_INET, socket.SOCK_STREAM
            ) as sock,
        ):
            sock.shutdown(socket.SHUT_RDWR)


@contextlib.asynccontextmanager
async def answered_within(
    conn: AsyncConnection[Any], seconds: float
) -> AsyncIterator[None]:
    """Drop ``conn`` if what the block sends on it is not answered within
    ``seconds``: the block then fails with ``UnansweredError``.

    Not an asyncio timeout: psycopg meets a cancelled statement by sending the
    server a cancel request and waiting for the statement to end, on a server
    that went silent up to 5 s for each (psycopg#1371). Shutting the socket down
    ends the wait at once, as the connection error it is; the connection is
    closed, so a pool discards it.
    """
    deadline = _AnswerDeadline(conn, seconds)
    try:
        yield
    except psycopg.OperationalError as error:
        if deadline.passed:
            raise UnansweredError(
                f"no answer from the server within {seconds:g} s; connection dropped"
            ) from error
        raise
    finally:
        deadline.cancel()
        if deadline.passed:
            # Even when the answer came just as the socket was shut down.
            await conn.close()
