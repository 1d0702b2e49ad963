"""Rapport: real-time conversation analytics (connections, not vanity)."""

__version__ = "0.1.0"
