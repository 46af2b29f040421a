#!/bin/sh
# The services' logins, with the passwords compose gives the postgres container.
# Runs from /docker-entrypoint-initdb.d, on the first start of an empty volume
# only. What each role may do comes from the migrations (0008_service_roles),
# which create these roles themselves where no operator did, without passwords.
set -eu

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v gateway="$OE_GATEWAY_DB_PASSWORD" \
    -v router="$OE_ROUTER_DB_PASSWORD" \
    -v executor="$OE_EXECUTOR_DB_PASSWORD" \
    -v notifier="$OE_NOTIFIER_DB_PASSWORD" <<'SQL'
CREATE ROLE oe_gateway LOGIN NOINHERIT PASSWORD :'gateway';
CREATE ROLE oe_router LOGIN NOINHERIT PASSWORD :'router';
CREATE ROLE oe_executor LOGIN NOINHERIT PASSWORD :'executor';
CREATE ROLE oe_notifier LOGIN NOINHERIT PASSWORD :'notifier';
SQL
