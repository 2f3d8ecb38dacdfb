"""Pure, synchronous, destination-agnostic steps: parse/validate, normalise/hash, consent, filters.

Nothing here does I/O or reads the clock: time comes in as an argument.
"""
