"""pixelrelay: a self-hosted server-side conversion gateway for the TikTok Events API v1.3."""

__version__ = "0.1.0"
