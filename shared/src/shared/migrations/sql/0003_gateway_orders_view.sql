-- The gateway's read model: one row per order, kept up to date from the event
-- store by the gateway's projector, with its checkpoint in es.checkpoints,
-- advanced in the same transaction as the rows.
CREATE SCHEMA IF NOT EXISTS gateway;

CREATE TABLE IF NOT EXISTS gateway.orders_view (
    order_id        uuid PRIMARY KEY,
    status          text        NOT NULL,
    token_pair      text        NOT NULL,
    side            text        NOT NULL,
    amount          numeric     NOT NULL,
    client_order_id text,
    venue           text,
    final_price     numeric,
    tx_hash         text,
    attempts        integer     NOT NULL DEFAULT 0,
    failure_reason  text,
    version         integer     NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

CREATE INDEX IF NOT EXISTS orders_view_created ON gateway.orders_view (created_at DESC);
CREATE INDEX IF NOT EXISTS orders_view_status_created
    ON gateway.orders_view (status, created_at DESC);
