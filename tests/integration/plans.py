"""The plans PostgreSQL chooses, read as notices: auto_explain on one session.

Every statement the session runs afterwards, nested ones (inside PL/pgSQL)
included, sends its plan to the client as a notice, collected in the list returned.
"""

from collections.abc import Callable

from psycopg import AsyncConnection, Connection
from psycopg.errors import Diagnostic

_SETTINGS = (
    "auto_explain.log_min_duration = 0",
    "auto_explain.log_nested_statements = on",
    "auto_explain.log_level = notice",
    "client_min_messages = notice",
)


def _collect(plans: list[str]) -> Callable[[Diagnostic], None]:
    return lambda d: plans.append(d.message_primary or "")


def plans_as_notices(conn: Connection[object]) -> list[str]:
    plans: list[str] = []
    conn.add_notice_handler(_collect(plans))
    conn.execute("LOAD 'auto_explain'")
    for setting in _SETTINGS:
        conn.execute(f"SET {setting}")
    return plans


async def plans_as_notices_async(conn: AsyncConnection[object]) -> list[str]:
    plans: list[str] = []
    conn.add_notice_handler(_collect(plans))
    await conn.execute("LOAD 'auto_explain'")
    for setting in _SETTINGS:
        await conn.execute(f"SET {setting}")
    return plans
