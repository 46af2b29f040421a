"""The ``orders`` command: talks to a running system over HTTP and WebSocket only."""
