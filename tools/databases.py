"""Throwaway databases: each test run, chaos run or benchmark gets its own."""

import contextlib
from collections.abc import Iterator

import psycopg
from psycopg import sql

from shared.migrations import migrate


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
        yield url
    finally:
        if not keep:
            with psycopg.connect(server_url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(dbname)
                    )
                )
