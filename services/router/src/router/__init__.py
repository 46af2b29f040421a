"""The router service: quotes both venues and chooses each attempt's route."""
