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
--   * checkpoints move only through es.advance_checkpoint / es.move_checkpoint,
--     and only the service a checkpoint belongs to may move it (the relay's,
--     relay:<namespace>, belongs to every service: each runs the relay);
--   * the notifier appends nothing.
-- chain.* is the simulated Solana cluster: the router reads pools through it
-- (and seeds a fresh one), the executor sends and lands transactions.
--
-- Roles belong to the server, not the database: created once (by the first
-- database migrated, or beforehand by an operator, with passwords of their
-- choosing), then granted in each database. Creating them needs CREATEROLE;
-- granting does not. Passwords are never set here.

DO $$
DECLARE
    v_role text;
BEGIN
    FOREACH v_role IN ARRAY ARRAY['oe_gateway', 'oe_router', 'oe_executor', 'oe_notifier']
    LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = v_role) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I LOGIN NOINHERIT', v_role);
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN
                    NULL;  -- another database's migration created it a moment ago
                WHEN insufficient_privilege THEN
                    RAISE EXCEPTION 'creating role % needs CREATEROLE', v_role
                        USING ERRCODE = 'insufficient_privilege',
                              HINT = 'Create the four service roles beforehand'
                                  ' (LOGIN, with passwords), or migrate as a role'
                                  ' with CREATEROLE.';
            END;
        END IF;
        -- A role made by someone else must not carry more than a service needs,
        -- or the grants below would be moot: no attribute beyond LOGIN, no
        -- membership of any role (pg_write_all_data, a superuser, the owner,
        -- another service), nothing it owns.
        IF EXISTS (
            SELECT FROM pg_catalog.pg_roles AS r
             WHERE r.rolname = v_role
               AND (r.rolsuper OR r.rolbypassrls OR r.rolcreaterole OR r.rolcreatedb
                    OR r.rolreplication
                    OR EXISTS (SELECT FROM pg_catalog.pg_auth_members AS m
                                WHERE m.member = r.oid)
                    OR EXISTS (SELECT FROM pg_catalog.pg_database AS d
                                WHERE d.datdba = r.oid)
                    OR EXISTS (SELECT FROM pg_catalog.pg_shdepend AS o
                                WHERE o.refclassid = 'pg_catalog.pg_authid'::regclass
                                  AND o.refobjid = r.oid AND o.deptype = 'o'))
        ) THEN
            RAISE EXCEPTION 'role % may do more than a service: it has an attribute'
                ' beyond LOGIN, is a member of a role, or owns something', v_role
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END LOOP;
END
$$;

-- Nothing by default. Functions are executable by PUBLIC unless revoked; the
-- migration runner revokes that in the project's schemas after every script,
-- this one and later ones (shared/migrations). Servers from before PostgreSQL
-- 15 let PUBLIC create in schema public, where a service could plant a function
-- a migration would then run as the owner.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
DO $$
BEGIN
    -- For servers whose databases are closed to PUBLIC.
    EXECUTE format(
        'GRANT CONNECT ON DATABASE %I TO oe_gateway, oe_router, oe_executor, oe_notifier',
        current_database()
    );
END
$$;

-- Who may move a checkpoint, and how far: anyone not a service (the owner, an
-- operator) anywhere; a service only its own, and never past the head of the
-- log, where it would skip events not yet written. Every service runs the relay, so each
-- may move the relay's. session_user is the login, whatever role it has set.
CREATE FUNCTION es.require_checkpoint_mover(p_subscriber text, p_to bigint)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF session_user NOT IN ('oe_gateway', 'oe_router', 'oe_executor', 'oe_notifier') THEN
        RETURN;
    END IF;
    IF p_subscriber NOT LIKE 'relay:%'
       AND NOT (session_user = 'oe_gateway' AND p_subscriber LIKE 'projection:gateway.%')
       AND NOT (session_user = 'oe_executor' AND p_subscriber LIKE 'projection:executor.%')
    THEN
        RAISE EXCEPTION '% may not move checkpoint %', session_user, p_subscriber
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_to > (SELECT last_position FROM es.position_counter) THEN
        RAISE EXCEPTION 'checkpoint % cannot move to %: past the head of the log',
            p_subscriber, p_to
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- A checkpoint only moves forward: advancing returns whether it moved.
CREATE FUNCTION es.advance_checkpoint(p_subscriber text, p_position bigint)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = es, pg_temp
AS $$
BEGIN
    PERFORM es.require_checkpoint_mover(p_subscriber, p_position);
    INSERT INTO es.checkpoints AS c (subscriber, position)
    VALUES (p_subscriber, p_position)
    ON CONFLICT (subscriber) DO UPDATE
       SET position = excluded.position, updated_at = now()
     WHERE c.position < excluded.position;
    RETURN FOUND;
END
$$;

CREATE OR REPLACE FUNCTION es.move_checkpoint(p_subscriber text, p_read_after bigint, p_to bigint)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = es, pg_temp
AS $$
BEGIN
    PERFORM es.require_checkpoint_mover(p_subscriber, p_to);
    IF p_to <= p_read_after THEN
        RAISE EXCEPTION 'move_checkpoint: % must be past %', p_to, p_read_after;
    END IF;
    INSERT INTO es.checkpoints AS c (subscriber, position)
    VALUES (p_subscriber, p_to)
    ON CONFLICT (subscriber) DO UPDATE
       SET position = excluded.position, updated_at = now()
     WHERE c.position <= p_read_after;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'checkpoint % is past %: another instance applied these events',
                        p_subscriber, p_read_after
              USING ERRCODE = 'OE409';
    END IF;
END
$$;

-- The appends run as their owner, with a search path no caller can shadow.
ALTER FUNCTION es.append_events(uuid, integer, uuid[], text[], jsonb[], uuid[], uuid[])
    SECURITY DEFINER SET search_path = es, pg_temp;
ALTER FUNCTION es.append_batch(uuid[], integer[], integer[], uuid[], text[], jsonb[], uuid[], uuid[])
    SECURITY DEFINER SET search_path = es, pg_temp;

-- Every service: the migration ledger (to see the schema is current), the log,
-- the checkpoints (read; moved through the functions).
GRANT USAGE ON SCHEMA public TO oe_gateway, oe_router, oe_executor, oe_notifier;
GRANT SELECT ON public.schema_migrations TO oe_gateway, oe_router, oe_executor, oe_notifier;
GRANT USAGE ON SCHEMA es TO oe_gateway, oe_router, oe_executor, oe_notifier;
GRANT SELECT ON es.events, es.position_counter, es.checkpoints
    TO oe_gateway, oe_router, oe_executor, oe_notifier;
GRANT EXECUTE ON FUNCTION
    es.advance_checkpoint(text, bigint),
    es.move_checkpoint(text, bigint, bigint)
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

-- The simulated chain's RPC. Its genesis is written once and the ledger only
-- grows: nobody may rewrite either.
GRANT USAGE ON SCHEMA chain TO oe_router, oe_executor;
GRANT SELECT, INSERT ON chain.genesis, chain.pools TO oe_router;
GRANT SELECT, INSERT ON chain.genesis TO oe_executor;
GRANT SELECT, INSERT, UPDATE ON chain.pools, chain.transactions TO oe_executor;
GRANT INSERT ON chain.ledger TO oe_executor;
