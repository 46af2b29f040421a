-- A batch's checkpoint moves only from exactly where the batch was read after.
-- 0007 accepted any stored position at or below it, so an operator's rewind (a
-- read model rebuilt from 0 while a leader runs) was silently undone by the
-- leader's next batch, and the events between were never applied again. Every
-- instance reads its batch right after the stored checkpoint, so equality costs
-- a running one nothing; one that finds the checkpoint moved, either way, is
-- superseded and starts again from where it now is.
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
     WHERE c.position = p_read_after;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'checkpoint % is no longer at %: another instance applied'
                        ' these events, or it was moved by hand',
                        p_subscriber, p_read_after
              USING ERRCODE = 'OE409';
    END IF;
END
$$;
