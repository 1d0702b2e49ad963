"""Figures of several tables by client: a client missing from one table has that table's
figures NULL and the other table's figures as they are (streams/figures.py ``figures_sql``)."""

from __future__ import annotations

from streams import figures
from streams.store.client import connect
from tests.support.stack import Namespace


def test_a_client_missing_from_one_table_has_its_figures_null(namespace: Namespace) -> None:
    client = connect(namespace.store_url, namespace.settings)
    try:
        client.command("INSERT INTO conversations (client_id, account_id, platform, root_id, person_id, started_at, "
                       "last_at, version) VALUES ('a', 'acc', 'x', 'r1', 'p1', now64(3), now64(3), 1), "
                       "('a', 'acc', 'x', 'r2', 'p1', now64(3), now64(3), 1)")
        client.command("INSERT INTO activity_minutely (client_id, account_id, platform, minute, likes, reposts) "
                       "VALUES ('b', 'acc', 'x', now(), 5, 1)")
        scope = figures.params_scope(None)
        text = figures.figures_sql(("conversations", "likes", "reposts"), scope, by="client_id")
        result = client.query(text, parameters=scope.parameters)
        assert result.column_names == ("client_id", "conversations", "likes", "reposts")
        assert result.result_rows == [("a", 2, None, None), ("b", None, 5, 1)]
    finally:
        client.close()
