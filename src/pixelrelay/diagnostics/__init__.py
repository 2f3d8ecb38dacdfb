"""Diagnostics: the read model, report, page and endpoints behind `/`, JSON and alerts."""
