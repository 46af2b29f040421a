"""Code shared by the order execution engine's services: domain, event store, messaging."""
