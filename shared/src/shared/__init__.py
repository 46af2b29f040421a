"""Code the order execution engine's services share: domain, event store, messaging."""
