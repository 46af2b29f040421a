"""Harness code: run the whole system as processes, drive load, break things."""
