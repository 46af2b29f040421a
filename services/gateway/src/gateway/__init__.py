"""The gateway service: the HTTP API, the order read model and the dashboard."""
