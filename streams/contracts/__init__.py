"""What the pipeline's parts agree on, declared once: names, row layouts, wire formats.

Every process of Rapport (ingest agents, the normalizer, the sink, a worker of another
version during a rolling upgrade) meets the others only through the broker and the store,
so what crosses them lives here and nowhere else:

- :mod:`.topics`: every topic, its logical name and what it carries;
- :mod:`.headers`: the header names of a raw record;
- :mod:`.tables`: a spec per table the pipeline writes (columns, epoch-ms columns, the
  month-partition column), derived from ``schemas/`` where ``schemas/`` defines the record
  and checked against the migrations' DDL by tests/unit/test_schema_guard.py;
- :mod:`.archive`: the ``raw_events`` row (:class:`~.archive.ArchiveRow`) and the DLQ record;
- :mod:`.envelopes`: the ``interactions`` envelope, its versions and their codec.
- :mod:`.groups`: the worker roles (``all``, ``normalize``, ``detect``) and the consumer
  group each commits under.

Pure: no faust, no Kafka client, no ClickHouse client.
"""
