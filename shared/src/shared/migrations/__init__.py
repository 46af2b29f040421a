"""Schema migrations: numbered SQL files applied once each, in order, under a lock."""

import re
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Final

import psycopg
from psycopg import sql
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from shared.postgres.connections import to_live_primary

MIGRATION_LOCK: Final = 0x6F65_6D69
"""Advisory lock key held while migrating, so services starting together queue."""

PROJECT_SCHEMAS: Final = ("es", "chain", "gateway", "executor")
"""Where the migrations create functions: none of them is PUBLIC's to execute."""

LOCK_TIMEOUT_MS: Final = 2_000
"""How long one statement of a migration waits for a lock before the migration
rolls back and is tried again. A DDL statement waiting for a lock blocks every
query that comes after it on that table: against a running release, a long
transaction would otherwise stall the order path for as long as it lasts."""
LOCKED_OUT_S: Final = 120.0
"""How long a migration is tried again while its locks stay taken."""

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS public.schema_migrations (
    version    text        PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def _scripts() -> list[Traversable]:
    folder = resources.files(__package__).joinpath("sql")
    scripts = sorted(
        (f for f in folder.iterdir() if _NAME.match(f.name)), key=lambda f: f.name
    )
    numbers = [f.name[:4] for f in scripts]
    if len(set(numbers)) != len(numbers):
        # Two files with one number would apply in an order nobody chose.
        raise RuntimeError(f"duplicate migration numbers in {numbers}")
    return scripts


def migrate(conninfo: str, *, up_to: str | None = None) -> list[str]:
    """Apply every migration not applied yet (through version ``up_to``, when
    given); return the versions applied now.

    Each file runs in its own transaction together with its ledger row, so a
    failing migration leaves neither trace nor record. Files must not contain
    their own BEGIN/COMMIT.

    An up-to-date schema is only read, so services logged in as their own roles
    (0008_service_roles), which may not change it, start as owners do. A login
    that may not read the ledger or apply what is pending gets
    ``MigrationRefusedError``, saying which.
    """
    applied_now: list[str] = []
    # As every session of the engine: on a live primary, noticing losing it.
    with psycopg.connect(to_live_primary(conninfo), autocommit=True) as conn:
        # Session-level lock: released by the unlock below or, if we crash, by
        # the server when the connection drops.
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            try:
                done = _applied(conn)
            except psycopg.errors.InsufficientPrivilege as error:
                raise MigrationRefusedError(
                    f"{conn.info.user} may not read which migrations are applied"
                    f" ({error.diag.message_primary}): the schema is behind this"
                    " release; migrate it as its owner: python -m shared.migrations"
                ) from error
            scripts = {s.name.removesuffix(".sql"): s for s in _scripts()}
            pending = [
                version
                for version in scripts
                if version not in done and (up_to is None or version <= up_to)
            ]
            for version in pending:
                try:
                    _apply_when_unlocked(conn, scripts[version], version)
                except psycopg.errors.InsufficientPrivilege as error:
                    hint = (
                        f" ({error.diag.message_hint})"
                        if error.diag.message_hint
                        else ""
                    )
                    raise MigrationRefusedError(
                        f"{conn.info.user} may not apply {version}:"
                        f" {error.diag.message_primary}{hint}. The schema is migrated"
                        " by its owner: python -m shared.migrations"
                    ) from error
                applied_now.append(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return applied_now


class MigrationRefusedError(RuntimeError):
    """The schema is behind this release and this login may not migrate it."""


class MigrationLockedOutError(RuntimeError):
    """A migration's locks stayed taken elsewhere: it was not applied."""


def _applied(conn: psycopg.Connection[tuple[object, ...]]) -> set[str]:
    (ledger,) = conn.execute(
        "SELECT to_regclass('public.schema_migrations') IS NOT NULL"
    ).fetchone() or (False,)
    if not ledger:
        return set()
    return {
        str(version)
        for (version,) in conn.execute("SELECT version FROM public.schema_migrations")
    }


def _apply_when_unlocked(
    conn: psycopg.Connection[tuple[object, ...]], script: Traversable, version: str
) -> None:
    """Apply ``version``, trying again while a lock it needs is held elsewhere."""
    try:
        for attempt in Retrying(
            retry=retry_if_exception_type(psycopg.errors.LockNotAvailable),
            wait=wait_exponential(multiplier=0.1, max=5.0),
            stop=stop_after_delay(LOCKED_OUT_S),
            reraise=True,
        ):
            with attempt:
                _apply(conn, script, version)
    except psycopg.errors.LockNotAvailable as error:
        raise MigrationLockedOutError(
            f"{version} could not take its locks within {LOCK_TIMEOUT_MS} ms, over"
            f" and over for {LOCKED_OUT_S:g} s: {error.diag.message_primary}. A long"
            " transaction holds them (pg_stat_activity); end it and migrate again"
        ) from error


def _apply(
    conn: psycopg.Connection[tuple[object, ...]], script: Traversable, version: str
) -> None:
    with conn.transaction():
        conn.execute(f"SET LOCAL lock_timeout = {int(LOCK_TIMEOUT_MS)}".encode())
        # Every name in the scripts is schema-qualified; nothing a less trusted
        # role created in another schema may stand in for a built-in here.
        conn.execute("SET LOCAL search_path = pg_catalog, pg_temp")
        conn.execute(_CREATE_LEDGER)
        # Sent without parameters, so a file may hold many statements; bytes
        # because text read from a file is no LiteralString.
        conn.execute(script.read_text(encoding="utf-8").encode())
        _functions_not_public(conn)
        conn.execute(
            "INSERT INTO public.schema_migrations (version) VALUES (%s)", (version,)
        )


def _functions_not_public(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """After every script: a default privilege cannot revoke PUBLIC's EXECUTE per
    schema, and a database-wide one would reach every function the owner ever
    creates in the database, extensions included."""
    present = conn.execute(
        "SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname = ANY(%s)",
        (list(PROJECT_SCHEMAS),),
    ).fetchall()
    for (schema,) in present:
        conn.execute(
            sql.SQL("REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA {} FROM PUBLIC").format(
                sql.Identifier(str(schema))
            )
        )
