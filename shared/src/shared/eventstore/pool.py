"""The PostgreSQL connection pool every adapter of the store shares."""

from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

Pool = AsyncConnectionPool[AsyncConnection[TupleRow]]


def open_pool(
    conninfo: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    statement_timeout_ms: int = 5_000,
    idle_in_transaction_timeout_ms: int = 5_000,
    name: str | None = None,
) -> Pool:
    """A pool of autocommit connections, not yet open.

    The caller opens it (``await pool.open(wait=True)`` fails fast on a wrong URL)
    and closes it, in its lifespan: psycopg deprecates opening an async pool in
    its constructor. Keep it small: appends serialize on one row lock, so extra
    connections only add waiters. The timeouts stop a stuck client from holding
    locks longer than any request is worth.
    """

    async def configure(conn: AsyncConnection[TupleRow]) -> None:
        await conn.execute(
            "SELECT set_config('statement_timeout', %s, false),"
            " set_config('idle_in_transaction_session_timeout', %s, false)",
            (str(statement_timeout_ms), str(idle_in_transaction_timeout_ms)),
        )

    return Pool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        open=False,
        kwargs={"autocommit": True},
        configure=configure,
        check=Pool.check_connection,
        name=name,
    )
