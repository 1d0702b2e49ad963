"""Simulator: realistic, deterministic platform traffic for a clients file (`rapport simulate`).

``traffic`` schedules the events (the :class:`~streams.simulator.traffic.Simulator`);
``world`` holds the accounts, people and messages; ``texts`` writes their words;
``render``, ``social`` and ``pages`` turn a message into each platform's native payload;
``command`` paces the traffic into a running stack's raw topics. It produces raw payloads,
like the ingest agents, and depends on :mod:`streams.ingest` only for its publisher.
"""
