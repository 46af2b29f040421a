"""Each service logs in as its own role and can do only what that service does.

The database, not the code, keeps the log append-only and each service's private
state its own (migration 0008_service_roles).
"""

import re
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from shared.migrations import MigrationRefusedError, migrate
from shared.postgres.roles import SERVICE_ROLES, service_conninfo
from tests.conftest import fresh_database
from tests.integration.system import System
from tools.system import service_of

ROLES_MIGRATION = (
    Path(__file__).resolve().parents[2]
    / "shared/src/shared/migrations/sql/0008_service_roles.sql"
)

APPEND = """
SELECT outcome FROM es.append_batch(
    ARRAY[%(stream)s]::uuid[], ARRAY[0], ARRAY[1], ARRAY[%(event)s]::uuid[],
    ARRAY['Probe'], ARRAY['{}'::jsonb], ARRAY[%(event)s]::uuid[], ARRAY[NULL]::uuid[])
"""

# What a service may not do to the log, whichever service it is.
REWRITES = [
    "UPDATE es.events SET event_type = 'Tampered'",
    "DELETE FROM es.events",
    "TRUNCATE es.events",
    "INSERT INTO es.events SELECT * FROM es.events LIMIT 1",
    "UPDATE es.position_counter SET last_position = 0",
    "ALTER TABLE es.events DISABLE TRIGGER events_append_only",
    "DROP TRIGGER events_append_only ON es.events",
    "CREATE TABLE es.shadow (id int)",
]

# Which service may read which table: private state is its owner's alone.
READERS = {
    "es.events": {"gateway", "router", "executor", "notifier"},
    "es.checkpoints": {"gateway", "router", "executor", "notifier"},
    "gateway.orders_view": {"gateway"},
    "executor.in_flight": {"executor"},
    "chain.pools": {"router", "executor"},
    "chain.ledger": {"executor"},
}


def _as(database_url: str, service: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(service_conninfo(database_url, service), autocommit=True)


def _outcome(conn: psycopg.Connection[tuple[object, ...]], statement: str) -> str:
    """'ok', or the SQLSTATE the statement failed with; nothing it does is kept."""
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(statement.encode())
    except psycopg.Error as error:
        return error.sqlstate or "?"
    return "ok"


def test_the_migration_creates_the_roles_the_services_log_in_as() -> None:
    created = set(re.findall(r"'(oe_[a-z]+)'", ROLES_MIGRATION.read_text()))
    assert created == set(SERVICE_ROLES.values())


@pytest.mark.parametrize("service", sorted(SERVICE_ROLES))
@pytest.mark.parametrize("statement", REWRITES)
def test_no_service_can_rewrite_the_log(
    database_url: str, service: str, statement: str
) -> None:
    with _as(database_url, service) as conn:
        # 42501: insufficient privilege (owner-only DDL included).
        assert _outcome(conn, statement) == "42501", statement


@pytest.mark.parametrize("table", sorted(READERS))
def test_private_state_is_readable_only_by_its_service(
    database_url: str, table: str
) -> None:
    readable = set()
    for service in SERVICE_ROLES:
        with _as(database_url, service) as conn:
            query = f"SELECT * FROM {table} LIMIT 1"  # noqa: S608 - our own table names
            if _outcome(conn, query) == "ok":
                readable.add(service)
    assert readable == READERS[table]


def test_the_writers_append_through_the_store_and_the_notifier_cannot(
    database_url: str,
) -> None:
    outcomes = {}
    for service in SERVICE_ROLES:
        with _as(database_url, service) as conn:
            stream, event = uuid.uuid4(), uuid.uuid4()
            try:
                params = {"stream": stream, "event": event}
                row = conn.execute(APPEND, params).fetchone()
                outcomes[service] = row[0] if row else None
            except psycopg.errors.InsufficientPrivilege:
                outcomes[service] = "refused"
    assert outcomes == {
        "gateway": "appended",
        "router": "appended",
        "executor": "appended",
        "notifier": "refused",
    }


def test_every_session_of_a_running_system_is_its_services_role(
    system: System,
) -> None:
    owner_url = system.env["DATABASE_URL"]
    dbname = psycopg.conninfo.conninfo_to_dict(owner_url)["dbname"]
    with psycopg.connect(owner_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT DISTINCT application_name, usename FROM pg_stat_activity"
            " WHERE datname = %s AND application_name = ANY(%s)",
            (dbname, system.instances()),
        ).fetchall()
    logins = {(str(instance), str(user)) for instance, user in rows}
    assert logins == {
        (instance, SERVICE_ROLES[service_of(instance)])
        for instance in system.instances()
    }


def test_a_service_starts_on_a_current_schema_but_may_not_migrate_one(
    infrastructure: tuple[str, str], database_url: str
) -> None:
    """Services migrate at start: on a current schema that is a read. A schema
    behind the release is refused with what to do, and left as it was."""
    assert migrate(service_conninfo(database_url, "router")) == []

    with fresh_database(infrastructure[0], "behind") as url:
        with psycopg.connect(url, autocommit=True) as owner:
            owner.execute(
                "DELETE FROM public.schema_migrations WHERE version = %s",
                ("0007_move_checkpoint",),
            )
            owner.execute(sql.SQL("DROP FUNCTION es.move_checkpoint"))
        with pytest.raises(MigrationRefusedError, match="oe_router may not apply 0007"):
            migrate(service_conninfo(url, "router"))
        with psycopg.connect(url) as owner:
            (present,) = owner.execute(
                "SELECT to_regproc('es.move_checkpoint') IS NOT NULL"
            ).fetchone() or (None,)
        assert present is False
        assert migrate(url) == ["0007_move_checkpoint"]
