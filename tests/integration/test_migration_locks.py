"""A migration run against a live release never stalls its queries behind a lock
it waits for: it gives up the lock wait, rolls back, and tries again."""

import threading
import time

import psycopg
import pytest

from shared import migrations
from shared.migrations import MigrationLockedOutError, migrate
from tests.conftest import fresh_database

pytestmark = pytest.mark.integration


def _insert_order_row(url: str) -> None:
    """A write to the read model, waiting for its locks at most 20 s: far past
    any one try of the migration's, so only a wait behind it for good times out."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '20s'")
        conn.execute(
            "INSERT INTO gateway.orders_view (order_id, status, token_pair, side,"
            " amount, version, created_at, updated_at)"
            " VALUES (gen_random_uuid(), 'pending', 'SOL-USDC', 'sell', 1, 1,"
            " now(), now())"
        )


def _until_a_session_waits_for_a_lock(url: str) -> None:
    """Until some session of this database waits for a lock: the migration,
    stopped at the long transaction's table."""
    with psycopg.connect(url, autocommit=True) as conn:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            (waiting,) = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone() or (0,)
            if waiting:
                return
            time.sleep(0.01)
    raise AssertionError("the migration never waited for the reader's lock")


def test_writes_go_on_while_a_migration_waits_for_a_long_transaction(
    infrastructure: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """0010 rebuilds the order list's indexes. A reader's long transaction holds
    the table; the migration's DROP INDEX must wait for it. Waiting while holding
    the lock its CREATE INDEX took, it would block every write to the read model
    until the reader ended. It steps back instead, and goes in after."""
    monkeypatch.setattr(migrations, "LOCK_TIMEOUT_MS", 200)
    with fresh_database(infrastructure[0], "migration_locks", migrated=False) as url:
        migrate(url, up_to="0009_checkpoint_movers_by_membership")
        reader = psycopg.connect(url)
        reader.execute("SELECT count(*) FROM gateway.orders_view")  # holds it
        applied: list[str] = []
        migrating = threading.Thread(target=lambda: applied.extend(migrate(url)))
        migrating.start()
        try:
            _until_a_session_waits_for_a_lock(url)
            # While the reader still holds the table: queued behind a migration
            # that kept its locks while waiting, this would time out.
            _insert_order_row(url)
        finally:
            reader.commit()
            migrating.join(timeout=60)
            reader.close()

        assert "0010_orders_view_paging" in applied


def test_a_migration_locked_out_for_good_says_what_holds_it(
    infrastructure: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migrations, "LOCK_TIMEOUT_MS", 50)
    monkeypatch.setattr(migrations, "LOCKED_OUT_S", 0.5)
    with fresh_database(
        infrastructure[0], "migration_locked_out", migrated=False
    ) as url:
        migrate(url, up_to="0009_checkpoint_movers_by_membership")
        with psycopg.connect(url) as reader:
            reader.execute("SELECT count(*) FROM gateway.orders_view")
            with pytest.raises(MigrationLockedOutError, match="long transaction"):
                migrate(url)
            reader.rollback()
        # Nothing of it was applied: it goes in once the reader is gone.
        assert migrate(url)[0] == "0010_orders_view_paging"
