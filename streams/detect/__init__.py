"""Pure detection logic: threads, addressing, conversations, first responses and SLA time.

Nothing here imports faust, Kafka or ClickHouse. The agents in ``streams/agents`` feed
:class:`streams.detect.account_state.AccountState` one batch of interactions at a time and
write the rows it returns; ``streams.detect.recompute`` recomputes the same rows from scratch
and is the reference the tests hold the incremental code to.
"""
