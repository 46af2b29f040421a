"""Each service logs in as its own role and can do only what that service does.

The database, not the code, keeps the log append-only and each service's private
state its own (migration 0008_service_roles).
"""

import contextlib
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from shared import migrations
from shared.migrations import MigrationRefusedError, migrate
from shared.postgres.roles import SERVICE_ROLES, service_conninfo
from tests.conftest import RUN_ID, fresh_database
from tests.integration import probes
from tests.integration.system import System
from tools.system import service_of

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).resolve().parents[2] / "shared/src/shared/migrations/sql"
# The scripts that spell out the service roles by name.
NAMING_THE_ROLES = (
    "0008_service_roles.sql",
    "0009_checkpoint_movers_by_membership.sql",
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
EVERY = {"gateway", "router", "executor", "notifier"}
READERS = {
    "es.events": EVERY,
    "es.position_counter": EVERY,
    "es.checkpoints": EVERY,
    "gateway.orders_view": {"gateway"},
    "executor.in_flight": {"executor"},
    "chain.genesis": {"router", "executor"},
    "chain.pools": {"router", "executor"},
    "chain.transactions": {"executor"},
    "chain.ledger": set(),  # written by the executor, read by no service
}

# Who may change rows of which table (on empty tables: allowed is "UPDATE 0").
WRITERS = {
    "UPDATE gateway.orders_view SET status = status": {"gateway"},
    "DELETE FROM gateway.orders_view": set(),
    "UPDATE executor.in_flight SET attempt = attempt": {"executor"},
    "UPDATE es.checkpoints SET position = position": set(),
    "UPDATE chain.genesis SET seed = seed": set(),
    # recorded once, by the first process of the release that records them
    "UPDATE chain.genesis SET slot_ms = slot_ms": {"router", "executor"},
    "UPDATE chain.ledger SET ok = ok": set(),
    "DELETE FROM chain.ledger": set(),
    "UPDATE chain.pools SET version = version": {"executor"},
}

# Whose checkpoint each service may move: its own, and the relay's.
CHECKPOINT_MOVERS = {
    "relay:oe": EVERY,
    "projection:gateway.orders_view": {"gateway"},
    "projection:executor.in_flight": {"executor"},
    "test:somebody-else": set(),
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


@pytest.mark.parametrize("script", NAMING_THE_ROLES)
def test_the_migrations_name_the_roles_the_services_log_in_as(script: str) -> None:
    named = set(re.findall(r"'(oe_[a-z]+)'", (MIGRATIONS / script).read_text()))
    assert named == set(SERVICE_ROLES.values())


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
    query = f"SELECT * FROM {table} LIMIT 1"  # noqa: S608 - our own table names
    assert _allowed(database_url, query) == READERS[table]


def _allowed(database_url: str, statement: str) -> set[str]:
    allowed = set()
    for service in SERVICE_ROLES:
        with _as(database_url, service) as conn:
            if _outcome(conn, statement) == "ok":
                allowed.add(service)
    return allowed


@pytest.mark.parametrize("statement", sorted(WRITERS))
def test_a_service_changes_only_its_own_tables(
    database_url: str, statement: str
) -> None:
    assert _allowed(database_url, statement) == WRITERS[statement]


@pytest.fixture
def head(database_url: str) -> int:
    """The log's head, at least 1: a checkpoint may move up to it."""
    with psycopg.connect(database_url, autocommit=True) as owner:
        stream, event = uuid.uuid4(), uuid.uuid4()
        owner.execute(APPEND, {"stream": stream, "event": event})
        row = owner.execute("SELECT last_position FROM es.position_counter").fetchone()
    assert row is not None
    return int(str(row[0]))


@pytest.mark.parametrize("subscriber", sorted(CHECKPOINT_MOVERS))
@pytest.mark.usefixtures("head")
def test_a_service_moves_only_its_own_checkpoints(
    database_url: str, subscriber: str
) -> None:
    advance = f"SELECT es.advance_checkpoint('{subscriber}', 1)"
    move = f"SELECT es.move_checkpoint('{subscriber}', 0, 1)"
    assert _allowed(database_url, advance) == CHECKPOINT_MOVERS[subscriber]
    assert _allowed(database_url, move) == CHECKPOINT_MOVERS[subscriber]


@contextlib.contextmanager
def _login_granted(
    database_url: str, name: str, *grants: str
) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A session whose login is a new role, not a service's, granted ``grants``.

    Roles are the server's: each is named after the run and dropped afterwards.
    """
    role = f"oe_test_{RUN_ID}_{name}"
    with psycopg.connect(database_url, autocommit=True) as owner:
        owner.execute(sql.SQL("CREATE ROLE {} NOINHERIT").format(sql.Identifier(role)))
        try:
            for granted in grants:
                owner.execute(
                    sql.SQL("GRANT {} TO {}").format(
                        sql.Identifier(granted), sql.Identifier(role)
                    )
                )
            for grant in (
                "GRANT USAGE ON SCHEMA es TO {}",
                "GRANT EXECUTE ON FUNCTION es.advance_checkpoint(text, bigint) TO {}",
            ):
                owner.execute(sql.SQL(grant).format(sql.Identifier(role)))
            # session_user becomes the role, as if it had logged in.
            owner.execute(
                sql.SQL("SET SESSION AUTHORIZATION {}").format(sql.Identifier(role))
            )
            yield owner
        finally:
            owner.execute("RESET SESSION AUTHORIZATION")
            owner.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            owner.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.mark.usefixtures("head")
def test_a_login_granted_a_services_role_moves_only_that_services_checkpoints(
    database_url: str,
) -> None:
    """A pooler's or an IAM user's login, say, mapped to a service: it is held to
    what the service may move, however it is named."""
    moves = {
        subscriber: f"SELECT es.advance_checkpoint('{subscriber}', 1)"
        for subscriber in CHECKPOINT_MOVERS
    }
    with _login_granted(database_url, "pooler", "oe_router") as router:
        assert {s: _outcome(router, q) for s, q in moves.items()} == {
            "relay:oe": "ok",
            "projection:gateway.orders_view": "42501",
            "projection:executor.in_flight": "42501",
            "test:somebody-else": "42501",
        }
    with _login_granted(database_url, "iam", "oe_gateway", "oe_notifier") as both:
        assert {s: _outcome(both, q) for s, q in moves.items()} == {
            "relay:oe": "ok",
            "projection:gateway.orders_view": "ok",
            "projection:executor.in_flight": "42501",
            "test:somebody-else": "42501",
        }


@pytest.mark.usefixtures("head")
def test_an_operator_who_holds_no_services_role_moves_any_checkpoint(
    database_url: str,
) -> None:
    with _login_granted(database_url, "operator") as operator:
        for subscriber in CHECKPOINT_MOVERS:
            query = f"SELECT es.advance_checkpoint('{subscriber}', 1)"
            assert _outcome(operator, query) == "ok", subscriber


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
    instances = system.instances()
    logins = probes.logins(system.env["DATABASE_URL"])
    assert {(name, user) for name, user in logins if name in instances} == {
        (instance, SERVICE_ROLES[service_of(instance)]) for instance in instances
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


def test_a_database_from_before_the_roles_is_refused_until_its_owner_migrates(
    infrastructure: tuple[str, str],
) -> None:
    """The upgrade to 0008: services of this release meet a schema at 0007."""
    with fresh_database(infrastructure[0], "upgrade", migrated=False) as url:
        migrate(url, up_to="0007_move_checkpoint")
        router = service_conninfo(url, "router")
        with pytest.raises(MigrationRefusedError, match="schema is behind"):
            migrate(router)

        assert migrate(url) == [
            "0008_service_roles",
            "0009_checkpoint_movers_by_membership",
            "0010_orders_view_paging",
            "0011_move_checkpoint_from_where_it_is",
            "0012_chain_genesis_settings",
        ]
        assert migrate(router) == []


def test_functions_a_later_migration_adds_are_no_service_s_by_default(
    infrastructure: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    later = tmp_path / "0999_added_later.sql"
    later.write_text(
        "CREATE FUNCTION es.added_later() RETURNS int LANGUAGE sql AS 'SELECT 1';"
    )
    scripts = migrations._scripts()
    monkeypatch.setattr(migrations, "_scripts", lambda: [*scripts, later])
    with fresh_database(infrastructure[0], "later_function") as url:
        for service in SERVICE_ROLES:
            with _as(url, service) as conn:
                assert _outcome(conn, "SELECT es.added_later()") == "42501", service


def test_a_service_cannot_move_the_relay_past_the_head_of_the_log(
    database_url: str, head: int
) -> None:
    """It would skip every event not yet written: nothing would be published."""
    beyond = f"SELECT es.advance_checkpoint('relay:oe', {head + 1_000_000})"
    for service in SERVICE_ROLES:
        with _as(database_url, service) as conn:
            assert _outcome(conn, beyond) == "22023", service
