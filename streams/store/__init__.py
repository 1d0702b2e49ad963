"""The store side: clickhouse-connect client, migrations, sink batching.

Every Rapport process reaches the store over the ClickHouse HTTP interface, so the same
code runs against the embedded chDB server and against a ClickHouse server.
"""
