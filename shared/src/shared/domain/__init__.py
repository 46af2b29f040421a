"""Pure domain model of the order execution engine: no I/O, clock or randomness."""
