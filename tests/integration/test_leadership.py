"""A leader's lock session: the server lets go of the lock soon after the
leader's host vanishes, not hours later."""

from uuid import uuid4

import pytest

from shared.postgres.leadership import leadership

pytestmark = pytest.mark.integration


async def test_the_server_notices_a_lock_holder_that_vanished_within_seconds(
    database_url: str,
) -> None:
    """The server's end of the session probes a silent client after 15 s, three
    times 5 s apart, and drops a connection whose data goes unacknowledged for
    30 s: the advisory lock is freed about 30 s after the leader's host is gone
    (the server's defaults would keep it two hours)."""
    async with leadership(database_url, f"test-{uuid4()}") as session:
        cursor = await session.execute(
            "SELECT current_setting('tcp_keepalives_idle'),"
            " current_setting('tcp_keepalives_interval'),"
            " current_setting('tcp_keepalives_count'),"
            " current_setting('tcp_user_timeout')"
        )
        settings = await cursor.fetchone()

    assert settings == ("15", "5", "3", "30000")  # seconds, and ms for the last
