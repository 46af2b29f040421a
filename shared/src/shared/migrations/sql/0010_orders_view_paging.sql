-- The order list pages by (created_at, order_id), newest first: the order id
-- breaks ties, so a page boundary never skips or repeats an order. These indexes
-- serve that order, with and without the status filter, and replace the ones on
-- created_at alone.
CREATE INDEX IF NOT EXISTS orders_view_created_order
    ON gateway.orders_view (created_at DESC, order_id DESC);
CREATE INDEX IF NOT EXISTS orders_view_status_created_order
    ON gateway.orders_view (status, created_at DESC, order_id DESC);
DROP INDEX IF EXISTS gateway.orders_view_created;
DROP INDEX IF EXISTS gateway.orders_view_status_created;
