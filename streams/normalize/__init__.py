"""Pure normalizers: one module per platform, raw payload -> interactions | dead letter.

Nothing here imports faust, Kafka or ClickHouse. See :mod:`streams.normalize.base` for
the outcome types and :func:`streams.normalize.registry.normalize` for the entry point.
"""
