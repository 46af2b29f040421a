"""What every service process has in common: its runtime and its ops endpoints."""
