"""Throwaway databases: each test run, chaos run or benchmark gets its own."""

import contextlib
from collections.abc import Iterator

import psycopg
from psycopg import sql

from shared.migrations import migrate
from shared.postgres.roles import SERVICE_ROLES


def with_database(url: str, dbname: str) -> str:
    return psycopg.conninfo.make_conninfo(url, dbname=dbname)


@contextlib.contextmanager
def fresh_database(
    server_url: str, dbname: str, *, keep: bool = False, migrated: bool = True
) -> Iterator[str]:
    """Create ``dbname``, migrate it unless told not to, and drop it afterwards
    unless ``keep``."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    url = with_database(server_url, dbname)
    try:
        if migrated:
            migrate(url)
            admit_service_roles(server_url)
        yield url
    finally:
        if not keep:
            with psycopg.connect(server_url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(dbname)
                    )
                )


def admit_service_roles(server_url: str) -> None:
    """Let the services log in as their roles where the owner logs in by password.

    The roles come without passwords (0008_service_roles). A throwaway server that
    asks for one (testcontainers) gets the owner's for each: test tooling only.
    """
    password = psycopg.conninfo.conninfo_to_dict(server_url).get("password")
    if not password:
        return
    with psycopg.connect(server_url, autocommit=True) as conn:
        for role in SERVICE_ROLES.values():
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(str(password))
                )
            )
