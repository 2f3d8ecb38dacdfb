"""Delivery: per-destination workers that drain the outbox to the destination's API."""
