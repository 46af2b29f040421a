"""The notifier service: pushes order events to WebSocket subscribers."""
