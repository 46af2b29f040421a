"""Run the executor: ``python -m executor``."""

from executor.main import run

run()
