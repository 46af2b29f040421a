"""Run the notifier: ``python -m notifier``."""

from notifier.main import run

run()
