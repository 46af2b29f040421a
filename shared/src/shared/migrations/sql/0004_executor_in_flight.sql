-- The executor's read model of orders in flight: a transaction recorded, no
-- outcome yet. A starting executor reconciles each of these against the chain by
-- signature before it consumes anything. Kept by a leader-elected follower of the
-- store, with its checkpoint advanced in the same transaction as these rows.
CREATE SCHEMA IF NOT EXISTS executor;

CREATE TABLE IF NOT EXISTS executor.in_flight (
    order_id                uuid PRIMARY KEY,
    attempt                 integer     NOT NULL,
    signature               text        NOT NULL,
    last_valid_block_height bigint      NOT NULL,
    submitted_at            timestamptz NOT NULL
);
