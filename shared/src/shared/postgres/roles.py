"""The database role each service logs in as (migration 0008_service_roles)."""

import sys
from typing import Final

from psycopg.conninfo import make_conninfo

from shared.settings import Settings

SERVICE_ROLES: Final = {
    "gateway": "oe_gateway",
    "router": "oe_router",
    "executor": "oe_executor",
    "notifier": "oe_notifier",
}


def service_conninfo(owner_url: str, service: str) -> str:
    """``owner_url`` with the login changed to ``service``'s role.

    For servers that admit the roles without a password of their own (trust or
    peer authentication, as on a developer's machine); elsewhere each service is
    given its own ``DATABASE_URL``.
    """
    return make_conninfo(owner_url, user=SERVICE_ROLES[service])


def main() -> None:
    """``python -m shared.postgres.roles <service>``: print the service's
    connection string, derived from the settings' ``DATABASE_URL`` (make run)."""
    services = ",".join(SERVICE_ROLES)
    if sys.argv[1:] not in ([s] for s in SERVICE_ROLES):
        sys.exit(f"usage: python -m shared.postgres.roles {{{services}}}")
    print(service_conninfo(Settings().database_url, sys.argv[1]))  # noqa: T201 - a CLI's output


if __name__ == "__main__":
    main()
