"""The append-only event store: the port and its implementations."""
