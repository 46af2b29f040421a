-- The simulated chain's clock and blockhashes depend on SLOT_MS and
-- BLOCKHASH_VALID_SLOTS as well as MARKET_SEED: every process that reads or lands
-- on it must use the values it was started with. Recorded with the genesis, so a
-- process started with others refuses to start. A chain started before this
-- release has them unrecorded (NULL) until the first process of this release
-- records its own; the seed was always recorded.
ALTER TABLE chain.genesis
    ADD COLUMN IF NOT EXISTS slot_ms integer CHECK (slot_ms >= 1),
    ADD COLUMN IF NOT EXISTS blockhash_valid_slots integer
        CHECK (blockhash_valid_slots >= 1);
-- Only these two, and only while NULL (ensure_genesis): the genesis is otherwise
-- written once.
GRANT UPDATE (slot_ms, blockhash_valid_slots) ON chain.genesis TO oe_router, oe_executor;
