-- The event store: every order's events in one append-only table, in commit order.
--
-- Writers go through es.append_events() only. Readers tail es.events by
-- global_position, which is dense and commit-ordered: once position n is visible,
-- every position below n is visible too, so "the next position" never means "wait
-- and maybe skip".

CREATE SCHEMA es;

-- One-row counter. An append updates it just before its insert, and the row lock
-- is held until commit: that serializes position allocation with commit, so
-- positions become visible in order, and a rollback gives its positions back.
CREATE TABLE es.position_counter (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_position bigint  NOT NULL CHECK (last_position >= 0)
) WITH (fillfactor = 50);  -- room for HOT updates of the one hot row

INSERT INTO es.position_counter (singleton, last_position) VALUES (true, 0);

-- No index beyond the constraints' own: every index is maintained inside the
-- serialized append, and readers only ask by position or by stream.
CREATE TABLE es.events (
    global_position bigint      PRIMARY KEY CHECK (global_position >= 1),
    stream_id       uuid        NOT NULL,
    stream_version  integer     NOT NULL CHECK (stream_version >= 1),
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    data            jsonb       NOT NULL,
    correlation_id  uuid        NOT NULL,
    causation_id    uuid,
    recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT events_stream_version_uq UNIQUE (stream_id, stream_version),
    CONSTRAINT events_event_id_uq UNIQUE (event_id)
);

-- Relay and projection checkpoints: the last position each subscriber handled.
-- Updatable on purpose; only es.events is append-only.
CREATE TABLE es.checkpoints (
    subscriber text        PRIMARY KEY,
    position   bigint      NOT NULL CHECK (position >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Append-only, enforced here rather than trusted to every client: a hand-typed
-- UPDATE, DELETE or TRUNCATE fails too. (A superuser can still disable triggers;
-- that is deliberate and shows in the server log.)
CREATE FUNCTION es.refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on %.% is refused: the event store is append-only',
        TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'ES004';
END
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON es.events
    FOR EACH ROW EXECUTE FUNCTION es.refuse_change();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON es.events
    FOR EACH STATEMENT EXECUTE FUNCTION es.refuse_change();

-- Losing the counter row would stop every append; updating it stays cheap because
-- no trigger fires on UPDATE.
CREATE TRIGGER position_counter_kept
    BEFORE DELETE ON es.position_counter
    FOR EACH ROW EXECUTE FUNCTION es.refuse_change();

CREATE TRIGGER position_counter_no_truncate
    BEFORE TRUNCATE ON es.position_counter
    FOR EACH STATEMENT EXECUTE FUNCTION es.refuse_change();

-- Where these event ids already are, if they are one earlier append of this exact
-- run: positions of the first and last, version of the last. All NULL when none
-- is recorded. Any other overlap (another stream, another order, a partial run)
-- raises ES002.
CREATE FUNCTION es.recorded_append(
    p_stream uuid,
    p_event_ids uuid[],
    OUT first_position bigint,
    OUT last_position bigint,
    OUT stream_version integer
)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    v_found integer;
    v_in_stream integer;
    v_offsets integer;
BEGIN
    SELECT count(*),
           count(*) FILTER (WHERE e.stream_id = p_stream),
           -- one distinct (version - ordinal) means consecutive versions, in order
           count(DISTINCT e.stream_version - i.ord),
           min(e.global_position),
           max(e.global_position),
           max(e.stream_version)
      INTO v_found, v_in_stream, v_offsets, first_position, last_position, stream_version
      FROM unnest(p_event_ids) WITH ORDINALITY AS i (event_id, ord)
      JOIN es.events AS e ON e.event_id = i.event_id;

    IF v_found = 0
       OR (v_found = cardinality(p_event_ids) AND v_in_stream = v_found AND v_offsets = 1)
    THEN
        RETURN;
    END IF;
    RAISE EXCEPTION 'event ids already recorded, but not as this append to stream %',
        p_stream
        USING ERRCODE = 'ES002';
END
$$;

-- Append events to one stream, atomically, in one round trip.
--
-- p_expected is the stream's current version (0: the stream must not exist;
-- -1: no check). The arrays hold one element per event, in order. Returns the
-- global positions of the first and last event and the stream's new version.
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
    OUT stream_version integer
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
END
$$;
