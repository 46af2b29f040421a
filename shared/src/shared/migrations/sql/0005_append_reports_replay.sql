-- es.append_events also says whether it recorded the events or found them already
-- recorded (a replay). Event ids are deterministic per decision step, so two
-- writers that take the same step race to one id: the loser's append succeeds as a
-- replay of the winner's, whose content may differ (another blockhash, another
-- quote). The loser must then act on what was recorded, not on its own copy, and
-- must not count an outcome it did not record.
--
-- Adding an OUT parameter changes the function's row type, so it is dropped and
-- created again in this one transaction. Callers that select the first three
-- columns by name keep working.
DROP FUNCTION es.append_events(uuid, integer, uuid[], text[], jsonb[], uuid[], uuid[]);

-- Append events to one stream, atomically, in one round trip.
--
-- p_expected is the stream's current version (0: the stream must not exist;
-- -1: no check). The arrays hold one element per event, in order. Returns the
-- global positions of the first and last event, the stream's new version, and
-- whether these events were already recorded by an earlier append (then the
-- positions and version are that append's).
-- Errors: ES001 wrong expected version (DETAIL is the actual version), ES002 event
-- id conflict, 22023 malformed arguments.
CREATE FUNCTION es.append_events(
    p_stream uuid,
    p_expected integer,
    p_event_ids uuid[],
    p_event_types text[],
    p_data jsonb[],
    p_correlation_ids uuid[],
    p_causation_ids uuid[],
    OUT first_position bigint,
    OUT last_position bigint,
    OUT stream_version integer,
    OUT replayed boolean
)
LANGUAGE plpgsql
-- Appends wait for each other on the counter row; a writer stuck for longer than
-- this is a fault worth an error, not a queue worth joining.
SET lock_timeout = '2s'
AS $$
#variable_conflict use_column
DECLARE
    v_count integer := coalesce(cardinality(p_event_ids), 0);
    v_current integer;
    v_last bigint;
BEGIN
    IF v_count = 0 OR p_expected < -1
       OR cardinality(p_event_types) IS DISTINCT FROM v_count
       OR cardinality(p_data) IS DISTINCT FROM v_count
       OR cardinality(p_correlation_ids) IS DISTINCT FROM v_count
       OR cardinality(p_causation_ids) IS DISTINCT FROM v_count
    THEN
        RAISE EXCEPTION 'append_events: need one element per event in every array '
            'and an expected version >= -1' USING ERRCODE = '22023';
    END IF;

    -- 1. A retried append returns what the first attempt recorded. Checked before
    --    the lock, so retries never queue behind writers.
    SELECT r.first_position, r.last_position, r.stream_version
      INTO first_position, last_position, stream_version
      FROM es.recorded_append(p_stream, p_event_ids) AS r;
    IF first_position IS NOT NULL THEN
        replayed := true;
        RETURN;
    END IF;

    -- 2. Take the counter row lock; it is held until commit, which follows at once.
    UPDATE es.position_counter
       SET last_position = last_position + v_count
     RETURNING last_position INTO v_last;

    -- 3. Under READ COMMITTED each statement takes a fresh snapshot, and the lock
    --    serializes appenders, so this sees every append committed before ours.
    SELECT coalesce(max(e.stream_version), 0)
      INTO v_current
      FROM es.events AS e
     WHERE e.stream_id = p_stream;

    IF p_expected <> -1 AND v_current <> p_expected THEN
        -- A concurrent attempt of this very append may have committed while we
        -- waited for the lock: that is a replay, not a conflict.
        SELECT r.first_position, r.last_position, r.stream_version
          INTO first_position, last_position, stream_version
          FROM es.recorded_append(p_stream, p_event_ids) AS r;
        IF first_position IS NOT NULL THEN
            -- We still hold the row lock, so nobody saw the positions we took.
            UPDATE es.position_counter SET last_position = last_position - v_count;
            replayed := true;
            RETURN;
        END IF;
        RAISE EXCEPTION 'stream % is at version %, expected %',
            p_stream, v_current, p_expected
            USING ERRCODE = 'ES001', DETAIL = v_current::text;
    END IF;

    -- 4. All rows in one statement.
    INSERT INTO es.events (
        global_position, stream_id, stream_version, event_id,
        event_type, data, correlation_id, causation_id
    )
    SELECT v_last - v_count + i.ord, p_stream, v_current + i.ord, i.event_id,
           i.event_type, i.data, i.correlation_id, i.causation_id
      FROM unnest(p_event_ids, p_event_types, p_data, p_correlation_ids, p_causation_ids)
           WITH ORDINALITY AS i (event_id, event_type, data, correlation_id, causation_id, ord);

    -- 5. A wake-up hint for tailing readers, once per append and without payload:
    --    readers always re-read from their own position.
    PERFORM pg_notify('es_events', '');

    first_position := v_last - v_count + 1;
    last_position := v_last;
    stream_version := v_current + v_count;
    replayed := false;
END
$$;
