"""PostgreSQL as a coordinator: leader election by advisory lock, LISTEN wake-ups."""
