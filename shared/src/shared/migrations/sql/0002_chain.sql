-- The simulated Solana chain: pool accounts, received transactions, landed swaps.
--
-- Kept in PostgreSQL so it outlives any executor and several executors share one
-- chain. Nothing here is event-sourced: it plays the part of the outside world.

CREATE SCHEMA chain;

-- One row: when slot 0 began. Slots (and block heights) count from here.
CREATE TABLE chain.genesis (
    singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    started_at timestamptz NOT NULL,
    seed       bigint      NOT NULL
);

-- Each pool account's state as of ``state->>'slot'``; market drift is applied on
-- read, so a row only changes when a swap lands.
CREATE TABLE chain.pools (
    venue      text        NOT NULL,
    pair       text        NOT NULL,
    state      jsonb       NOT NULL,
    version    bigint      NOT NULL DEFAULT 1 CHECK (version >= 1),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (venue, pair)
);

-- Every transaction the RPC accepted, keyed by signature: a duplicate send is a
-- no-op on this key. ``result`` is the landed outcome (amounts, error).
CREATE TABLE chain.transactions (
    signature               text        PRIMARY KEY,
    encoded                 text        NOT NULL,
    order_id                uuid        NOT NULL,
    attempt                 integer     NOT NULL,
    received_at             timestamptz NOT NULL,
    lands_at                timestamptz NOT NULL,
    last_valid_block_height bigint      NOT NULL,
    status                  text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'landed', 'expired')),
    slot                    bigint,
    result                  jsonb
);

CREATE INDEX transactions_due ON chain.transactions (lands_at)
    WHERE status = 'pending';

-- Every swap that landed, ours or a competitor's: what auditors reconcile against.
-- ``ok = false`` rows landed and paid their fee but moved no pool.
CREATE TABLE chain.ledger (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    signature  text        UNIQUE REFERENCES chain.transactions (signature),
    kind       text        NOT NULL CHECK (kind IN ('order', 'competitor')),
    order_id   uuid,
    attempt    integer,
    slot       bigint      NOT NULL,
    pair       text        NOT NULL,
    side       text        NOT NULL,
    ok         boolean     NOT NULL,
    error      text,
    amount_in  numeric     NOT NULL,
    amount_out numeric     NOT NULL,
    legs       jsonb       NOT NULL,
    landed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK ((kind = 'order') = (signature IS NOT NULL AND order_id IS NOT NULL))
);

CREATE INDEX ledger_order ON chain.ledger (order_id) WHERE order_id IS NOT NULL;
