"""Destinations by type. A new destination is a folder here plus one REGISTRY line."""
