"""The faust agents (normalize, detect, sink): thin wiring; each decodes, calls pure logic,
writes, and only then acks.

"Agent" here is faust's word for a stream processor. The programs that read a platform and
publish its raw payloads are the *ingest* agents (:mod:`streams.ingest`); the board's lines
about them are :mod:`streams.board.ingest_status`.
"""
