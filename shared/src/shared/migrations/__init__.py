"""Schema migrations: numbered SQL files applied once each, in order, under a lock."""

import re
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Final

import psycopg

MIGRATION_LOCK: Final = 0x6F65_6D69
"""Advisory lock key held while migrating, so services starting together queue."""

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


def migrate(conninfo: str) -> list[str]:
    """Apply every migration not applied yet; return the versions applied now.

    Each file runs in its own transaction together with its ledger row, so a
    failing migration leaves neither trace nor record. Files must not contain
    their own BEGIN/COMMIT.
    """
    applied_now: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        # Session-level lock: released by the unlock below or, if we crash, by
        # the server when the connection drops.
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            conn.execute(_CREATE_LEDGER)
            done = {
                version
                for (version,) in conn.execute(
                    "SELECT version FROM public.schema_migrations"
                )
            }
            for script in _scripts():
                version = script.name.removesuffix(".sql")
                if version in done:
                    continue
                with conn.transaction():
                    # Sent without parameters, so a file may hold many statements;
                    # bytes because text read from a file is no LiteralString.
                    conn.execute(script.read_text(encoding="utf-8").encode())
                    conn.execute(
                        "INSERT INTO public.schema_migrations (version) VALUES (%s)",
                        (version,),
                    )
                applied_now.append(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return applied_now
