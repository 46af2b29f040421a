"""Run the gateway: ``python -m gateway``."""

from gateway.main import run

run()
