-- Least privilege: each service logs in as its own role, which holds only what
-- that service does. The role that migrates owns every object; the services own
-- nothing, so none of them can alter a table, drop a trigger or grant itself more.
--
-- What this makes the database enforce, not just the code:
--   * es.events is written only through es.append_events / es.append_batch
--     (SECURITY DEFINER, run as the owner): no service may INSERT, UPDATE,
--     DELETE or TRUNCATE it, or touch the position counter;
--   * a service's private state is its own: gateway.orders_view is the
--     gateway's, executor.in_flight the executor's; no other service can read it;
--   * the notifier appends nothing.
-- Every service runs the relay (one at a time holds its lock), so each reads the
-- log and writes checkpoints. chain.* is the simulated Solana cluster: the
-- router reads pools through it, the executor sends and lands transactions.
--
-- Roles belong to the server, not the database: created once (by the first
-- database migrated, or beforehand by an operator, with passwords of their
-- choosing: CREATE ROLE needs CREATEROLE, granting does not), then granted in
-- each database. Passwords are never set here.

DO $$
DECLARE
    v_role text;
BEGIN
    FOREACH v_role IN ARRAY ARRAY['oe_gateway', 'oe_router', 'oe_executor', 'oe_notifier']
    LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = v_role) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I LOGIN NOINHERIT', v_role);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                -- Another database's migration created it a moment ago.
                NULL;
            END;
        END IF;
    END LOOP;
END
$$;

-- Nothing by default: functions are executable by PUBLIC unless revoked, here and
-- in later migrations.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA es FROM PUBLIC;
ALTER DEFAULT PRIVILEGES IN SCHEMA es REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
-- For servers whose databases are closed to PUBLIC.
DO $$
BEGIN
    EXECUTE format(
        'GRANT CONNECT ON DATABASE %I TO oe_gateway, oe_router, oe_executor, oe_notifier',
        current_database()
    );
END
$$;

-- The appends run as their owner, with a search path no caller can shadow.
ALTER FUNCTION es.append_events(uuid, integer, uuid[], text[], jsonb[], uuid[], uuid[])
    SECURITY DEFINER SET search_path = es, pg_temp;
ALTER FUNCTION es.append_batch(uuid[], integer[], integer[], uuid[], text[], jsonb[], uuid[], uuid[])
    SECURITY DEFINER SET search_path = es, pg_temp;

-- Every service: the migration ledger (to see the schema is current), the log,
-- the relay's and read models' checkpoints.
GRANT SELECT ON public.schema_migrations TO oe_gateway, oe_router, oe_executor, oe_notifier;
GRANT USAGE ON SCHEMA es TO oe_gateway, oe_router, oe_executor, oe_notifier;
GRANT SELECT ON es.events, es.position_counter
    TO oe_gateway, oe_router, oe_executor, oe_notifier;
GRANT SELECT, INSERT, UPDATE ON es.checkpoints
    TO oe_gateway, oe_router, oe_executor, oe_notifier;
GRANT EXECUTE ON FUNCTION es.move_checkpoint(text, bigint, bigint)
    TO oe_gateway, oe_router, oe_executor, oe_notifier;

-- The writers of order events.
GRANT EXECUTE ON FUNCTION
    es.append_events(uuid, integer, uuid[], text[], jsonb[], uuid[], uuid[]),
    es.append_batch(uuid[], integer[], integer[], uuid[], text[], jsonb[], uuid[], uuid[])
    TO oe_gateway, oe_router, oe_executor;

-- Private read models.
GRANT USAGE ON SCHEMA gateway TO oe_gateway;
GRANT SELECT, INSERT, UPDATE ON gateway.orders_view TO oe_gateway;
GRANT USAGE ON SCHEMA executor TO oe_executor;
GRANT SELECT, INSERT, UPDATE, DELETE ON executor.in_flight TO oe_executor;

-- The simulated chain's RPC: the router quotes from pools (and, first up on a
-- fresh chain, writes its genesis); the executor sends, watches and lands.
GRANT USAGE ON SCHEMA chain TO oe_router, oe_executor;
GRANT SELECT, INSERT ON chain.genesis, chain.pools TO oe_router;
GRANT SELECT, INSERT, UPDATE ON chain.genesis, chain.pools, chain.transactions, chain.ledger
    TO oe_executor;
