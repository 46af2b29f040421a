-- A read model moves its checkpoint in the transaction that writes a batch's
-- rows, to where the batch ends. Two instances can hold the same batch for a
-- moment (a leader whose lock session died has not noticed yet). Whoever moves
-- the checkpoint past the start of the batch first has applied those events, and
-- the other's transaction must fail and write nothing: a plain "advance if below"
-- would let the late one commit rows the first already applied. The check fails
-- on the server because the batch and its checkpoint go in one pipelined round
-- trip: the client sees no row count before the commit.
CREATE FUNCTION es.move_checkpoint(p_subscriber text, p_read_after bigint, p_to bigint)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
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
