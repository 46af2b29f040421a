"""The executor service: builds, signs, submits and confirms swaps."""
