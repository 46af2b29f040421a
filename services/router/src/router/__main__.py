"""Run the router: ``python -m router``."""

from router.main import run

run()
