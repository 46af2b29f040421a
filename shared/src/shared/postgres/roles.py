"""The database role each service logs in as (migration 0008_service_roles)."""

import os
import sys
from typing import Final

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from shared.settings import load_settings

SERVICE_ROLES: Final = {
    "gateway": "oe_gateway",
    "router": "oe_router",
    "executor": "oe_executor",
    "notifier": "oe_notifier",
}


def password_variable(service: str) -> str:
    """The environment variable holding ``service``'s role's password (compose
    uses the same names)."""
    return f"OE_{service.upper()}_DB_PASSWORD"


def service_conninfo(owner_url: str, service: str) -> str:
    """``owner_url`` with the login changed to ``service``'s role.

    The owner's password is never handed on: the role's comes from
    ``OE_<SERVICE>_DB_PASSWORD`` when set; without it the server must admit the
    role as it is (trust or peer authentication, as on a developer's machine).
    """
    params = {k: v for k, v in conninfo_to_dict(owner_url).items() if k != "password"}
    params["user"] = SERVICE_ROLES[service]
    if password := os.environ.get(password_variable(service)):
        params["password"] = password
    return make_conninfo("", **params)


def main() -> None:
    """``python -m shared.postgres.roles <service>``: print the service's
    connection string, derived from the settings' ``DATABASE_URL`` (make run)."""
    services = ",".join(SERVICE_ROLES)
    if sys.argv[1:] not in ([s] for s in SERVICE_ROLES):
        sys.exit(f"usage: python -m shared.postgres.roles {{{services}}}")
    print(service_conninfo(load_settings().database_url, sys.argv[1]))  # noqa: T201 - a CLI's output


if __name__ == "__main__":
    main()
