"""pixelrelay: a self-hosted server-side conversion gateway for the TikTok Events API v1.3."""

__version__ = "0.2.0"  # the only place the version is written (pyproject reads it)
