"""``python -m shared.migrations``: migrate the database named by the settings."""

import sys

from shared.migrations import MigrationLockedOutError, MigrationRefusedError, migrate
from shared.settings import load_settings


def main() -> None:
    try:
        applied = migrate(load_settings().database_url)
    except (MigrationLockedOutError, MigrationRefusedError) as error:
        print(f"not migrated: {error}", file=sys.stderr)  # noqa: T201 - a CLI's output
        sys.exit(1)
    print("applied:", ", ".join(applied) if applied else "nothing, already up to date")  # noqa: T201 - a CLI's output


if __name__ == "__main__":
    main()
