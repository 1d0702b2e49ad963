"""The terminal board: per-client numbers read from the store only (never in-memory counters)."""
