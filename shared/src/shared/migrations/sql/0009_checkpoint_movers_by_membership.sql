-- Who may move a checkpoint goes by what the login can act as, not by its name.
-- 0008 restricted only the four service logins themselves, so a login of another
-- name granted a service's role (a connection pooler's, an IAM user mapped to the
-- executor) moved every checkpoint as an operator would. Now a login that can
-- use or become a service's role is held to that service's checkpoints (to the
-- union of them, if it can act as several), and never past the head of the log.
-- Superusers, the owner and operators who hold no service's role stay
-- unrestricted: they re-drive and rebuild read models.
--
-- From PostgreSQL 16 a role created by a non-superuser with CREATEROLE is
-- granted to its creator WITH ADMIN OPTION but neither INHERIT nor SET, so the
-- owner that created the roles is a member of each; "can act as" is USAGE or
-- SET there, not MEMBER. Before 16 every member can SET ROLE, and creating a
-- role grants its creator nothing.
CREATE OR REPLACE FUNCTION es.require_checkpoint_mover(p_subscriber text, p_to bigint)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_acts_as text[];
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = session_user) THEN
        RETURN;  -- a superuser is a member of every role, and may do anything
    END IF;
    -- CASE evaluates only its chosen branch: servers before 16 know no 'SET'.
    SELECT array_agg(r) INTO v_acts_as
      FROM unnest(ARRAY['oe_gateway', 'oe_router', 'oe_executor', 'oe_notifier']) AS r
     WHERE CASE WHEN current_setting('server_version_num')::int >= 160000
                THEN pg_has_role(session_user, r, 'USAGE')
                     OR pg_has_role(session_user, r, 'SET')
                ELSE pg_has_role(session_user, r, 'MEMBER')
           END;
    IF v_acts_as IS NULL THEN
        RETURN;
    END IF;
    IF p_subscriber NOT LIKE 'relay:%'
       AND NOT ('oe_gateway' = ANY (v_acts_as) AND p_subscriber LIKE 'projection:gateway.%')
       AND NOT ('oe_executor' = ANY (v_acts_as) AND p_subscriber LIKE 'projection:executor.%')
    THEN
        RAISE EXCEPTION '% (acting as %) may not move checkpoint %',
            session_user, array_to_string(v_acts_as, ', '), p_subscriber
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_to > (SELECT last_position FROM es.position_counter) THEN
        RAISE EXCEPTION 'checkpoint % cannot move to %: past the head of the log',
            p_subscriber, p_to
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;
