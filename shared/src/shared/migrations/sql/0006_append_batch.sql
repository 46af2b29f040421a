-- Group commit: many appends, each to its own stream with its own expected version,
-- in one transaction.
--
-- The counter row lock is held from the first position taken to the commit's WAL
-- flush, so appends of separate transactions can never share a flush: every
-- append pays a full commit while all others wait. Writers therefore gather the
-- appends that arrive while one transaction is under way and send them together.
-- Each append still succeeds or fails on its own: a failed check is an outcome
-- row, not an error, so one stale writer never aborts the others' appends.
--
-- es.append_events stays, for writers of the previous release during a rolling
-- upgrade; both serialize on the same row lock.

-- One append's outcome, in the order the appends were given:
--   'appended'      first/last global position and the stream's new version;
--   'replayed'      the ids are already recorded as this exact run of this
--                   stream: that earlier append's positions and version;
--   'wrong_version' stream_version is the stream's actual version;
--   'id_conflict'   some ids are recorded, but not as this append.
CREATE FUNCTION es.append_batch(
    p_streams uuid[],          -- one element per append
    p_expected integer[],      -- one element per append (-1: no check)
    p_counts integer[],        -- events per append; the event arrays hold them in turn
    p_event_ids uuid[],
    p_event_types text[],
    p_data jsonb[],
    p_correlation_ids uuid[],
    p_causation_ids uuid[]
)
RETURNS TABLE (
    outcome text,
    first_position bigint,
    last_position bigint,
    stream_version integer
)
LANGUAGE plpgsql
-- As es.append_events: a writer stuck behind the counter lock for longer than this
-- is a fault worth an error, not a queue worth joining.
SET lock_timeout = '2s'
-- The replay check joins the ids to es.events. PL/pgSQL keeps each plan for the
-- session, and a plan made while es.events was small (a fresh database, or
-- statistics never gathered: autovacuum off) hashes the whole table, under the
-- lock, at a cost that grows with the store. Probing the unique index per id is
-- right at any size, so the join must not depend on statistics. (Not
-- enable_seqscan: the counter update can only scan, and its disabled cost would
-- set off JIT compilation on every call.)
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
#variable_conflict use_column
DECLARE
    v_appends integer := coalesce(cardinality(p_streams), 0);
    v_events integer := coalesce(cardinality(p_event_ids), 0);
    c_malformed constant text := 'need one stream, expected version (>= -1) and '
        'event count (>= 1) per append, and one element per event in every event array';
    v_last bigint;
    v_reserved bigint;
    v_appended boolean := false;
    v_from integer := 1;
    v_to integer;
    v_count integer;
    v_current integer;
    v_found integer;
    v_in_stream integer;
    v_offsets integer;
BEGIN
    IF v_appends = 0
       OR cardinality(p_expected) IS DISTINCT FROM v_appends
       OR cardinality(p_counts) IS DISTINCT FROM v_appends
       OR cardinality(p_event_types) IS DISTINCT FROM v_events
       OR cardinality(p_data) IS DISTINCT FROM v_events
       OR cardinality(p_correlation_ids) IS DISTINCT FROM v_events
       OR cardinality(p_causation_ids) IS DISTINCT FROM v_events
    THEN
        RAISE EXCEPTION 'append_batch: %', c_malformed USING ERRCODE = '22023';
    END IF;

    -- Positions for every event, taken at once: the lock is held from here to the
    -- commit. Positions of appends that fail their check are given back below.
    -- Every check runs under the lock: under READ COMMITTED each statement takes a
    -- fresh snapshot and every writer holds this lock to insert, so each check sees
    -- all that was ever recorded, this batch's earlier appends included, and no
    -- unique violation can surprise the batch.
    UPDATE es.position_counter AS c
       SET last_position = c.last_position + v_events
     RETURNING c.last_position - v_events INTO v_last;
    v_reserved := v_last + v_events;

    FOR i IN 1 .. v_appends LOOP
        v_count := p_counts[i];
        v_to := v_from + v_count - 1;
        IF v_count IS NULL OR v_count < 1 OR v_to > v_events
           OR p_expected[i] IS NULL OR p_expected[i] < -1
        THEN
            RAISE EXCEPTION 'append_batch: %', c_malformed USING ERRCODE = '22023';
        END IF;

        SELECT count(*),
               count(*) FILTER (WHERE e.stream_id = p_streams[i]),
               -- one distinct (version - ordinal) means consecutive versions, in order
               count(DISTINCT e.stream_version - r.ord),
               min(e.global_position),
               max(e.global_position),
               max(e.stream_version)
          INTO v_found, v_in_stream, v_offsets, first_position, last_position, stream_version
          FROM unnest(p_event_ids[v_from:v_to]) WITH ORDINALITY AS r (event_id, ord)
          JOIN es.events AS e ON e.event_id = r.event_id;

        IF v_found > 0 THEN
            IF v_found = v_count AND v_in_stream = v_found AND v_offsets = 1 THEN
                outcome := 'replayed';
            ELSE
                outcome := 'id_conflict';
                first_position := NULL;
                last_position := NULL;
                stream_version := NULL;
            END IF;
        ELSE
            SELECT coalesce(max(e.stream_version), 0)
              INTO v_current
              FROM es.events AS e
             WHERE e.stream_id = p_streams[i];

            IF p_expected[i] <> -1 AND v_current <> p_expected[i] THEN
                outcome := 'wrong_version';
                first_position := NULL;
                last_position := NULL;
                stream_version := v_current;
            ELSE
                INSERT INTO es.events (
                    global_position, stream_id, stream_version, event_id,
                    event_type, data, correlation_id, causation_id
                )
                SELECT v_last + r.ord, p_streams[i], v_current + r.ord, r.event_id,
                       r.event_type, r.data, r.correlation_id, r.causation_id
                  FROM unnest(p_event_ids[v_from:v_to], p_event_types[v_from:v_to],
                              p_data[v_from:v_to], p_correlation_ids[v_from:v_to],
                              p_causation_ids[v_from:v_to])
                       WITH ORDINALITY
                       AS r (event_id, event_type, data, correlation_id, causation_id, ord);

                outcome := 'appended';
                first_position := v_last + 1;
                last_position := v_last + v_count;
                stream_version := v_current + v_count;
                v_last := v_last + v_count;
                v_appended := true;
            END IF;
        END IF;

        RETURN NEXT;
        v_from := v_to + 1;
    END LOOP;

    IF v_to <> v_events THEN
        RAISE EXCEPTION 'append_batch: %', c_malformed USING ERRCODE = '22023';
    END IF;
    IF v_last < v_reserved THEN
        -- Still under the lock, so nobody saw the positions given back.
        UPDATE es.position_counter SET last_position = v_last;
    END IF;
    IF v_appended THEN
        -- One wake-up hint per transaction, as es.append_events sends.
        PERFORM pg_notify('es_events', '');
    END IF;
END
$$;

-- The same for the previous release's append, whose replay check joins the ids
-- the same way.
ALTER FUNCTION es.recorded_append(uuid, uuid[])
    SET enable_hashjoin = off SET enable_mergejoin = off;
