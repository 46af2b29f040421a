"""``python -m shared.migrations``: migrate the database named by the settings."""

from shared.migrations import migrate
from shared.settings import Settings


def main() -> None:
    applied = migrate(Settings().database_url)
    print("applied:", ", ".join(applied) if applied else "nothing, already up to date")  # noqa: T201 - a CLI's output


if __name__ == "__main__":
    main()
