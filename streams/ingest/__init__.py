"""Ingest: the platform agents, replay of recorded payloads and the traffic simulator.

Everything here produces raw payloads in each platform's native shape for the
``rapport.raw.<platform>`` topics; nothing here normalizes them.
"""
