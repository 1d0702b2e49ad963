"""Ingest: the platform agents and replay of recorded payloads.

Everything here produces raw payloads in each platform's native shape for the
``rapport.raw.<platform>`` topics; nothing here normalizes them. The traffic simulator, which makes the same shapes,
is :mod:`streams.simulator`.
"""
