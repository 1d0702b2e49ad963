"""deploy/grafana is exactly what streams/grafana renders, and what it renders hangs together."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from streams.grafana import provision, sql
from streams.grafana.macros import MacroError, TimeContext, expand, expand_macros, interpolate_variables
from streams.grafana.panels import DATASOURCE_UID, PLUGIN_ID

SCHEMA = json.loads((Path(__file__).parent / "alerting.schema.json").read_text())
ALL_QUERIES = {q.sql: q for q in (*sql.PANEL_QUERIES, *sql.ALERT_QUERIES)}


def boards() -> dict[str, dict[str, Any]]:
    return {name: json.loads(text) for name, text in provision.committed().items() if name.endswith(".json")}


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in board["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def test_rendering_is_deterministic_and_committed() -> None:
    first, second = provision.committed(), provision.committed()
    assert first == second
    stale = provision.stale()
    assert not stale, f"deploy/grafana is stale, run `python -m streams.grafana render`: {stale}"
    on_disk = {p.relative_to(provision.DEPLOY_DIR).as_posix() for p in provision.DEPLOY_DIR.rglob("*")
               if p.is_file() and "typecheck" not in p.parts}
    assert on_disk == set(first), "files in deploy/grafana that the renderer does not write"


def test_uids_and_panel_ids_are_unique_and_fixed() -> None:
    uids = [b["uid"] for b in boards().values()]
    assert len(uids) == len(set(uids)) == 3 and all(uids)
    for name, board in boards().items():
        ids = [p["id"] for p in panels(board)]
        assert len(ids) == len(set(ids)) and 0 not in ids, name
    rules = yaml.safe_load(provision.committed()[provision.RULES_FILE])["groups"][0]["rules"]
    notifications = yaml.safe_load(provision.committed()[provision.NOTIFICATIONS_FILE])
    receivers = [r["uid"] for cp in notifications["contactPoints"] for r in cp["receivers"]]
    all_uids = [r["uid"] for r in rules] + receivers + uids + [DATASOURCE_UID]
    assert len(all_uids) == len(set(all_uids))


def test_every_target_is_a_catalogued_query_on_the_clickhouse_datasource() -> None:
    used = set()
    for name, board in boards().items():
        for panel in panels(board):
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": PLUGIN_ID, "uid": DATASOURCE_UID}, panel["title"]
            for target in panel["targets"]:
                assert target["rawSql"] in ALL_QUERIES, f"{name}/{panel['title']}: query not in streams.grafana.sql"
                query = ALL_QUERIES[target["rawSql"]]
                assert target["format"] == (0 if query.time_series else 1)
                assert (panel["type"] == "timeseries") == query.time_series, panel["title"]
                assert target["editorType"] == "sql"
                used.add(query.key)
        for variable in board["templating"]["list"]:
            assert variable["multi"] and variable["includeAll"], variable["name"]
    assert used == {q.key for q in sql.PANEL_QUERIES}, "catalogued panel queries no board uses"


def test_queries_filter_by_client_and_time_series_by_time() -> None:
    for query in sql.PANEL_QUERIES:
        if query.client:
            assert "client_id IN (${client:singlequote})" in query.sql, query.key
        if query.time_series:
            assert "$__timeFilter(" in query.sql, query.key
            assert "$__timeInterval(" in query.sql or "$__timeGroup(" in query.sql, query.key
        assert (not query.client) == (query.key in {
            "events_per_stage", "records_per_topic", "consumer_lag", "dlq_rate", "latest_dead_letters",
            "ingest_latency", "stalled_stages",
        }), f"{query.key}: only pipeline data (no client column) may skip the client filter"


def test_alert_provisioning_validates_against_the_schema() -> None:
    rules = yaml.safe_load(provision.committed()[provision.RULES_FILE])
    notifications = yaml.safe_load(provision.committed()[provision.NOTIFICATIONS_FILE])
    jsonschema.validate(rules, SCHEMA)
    jsonschema.validate(notifications, SCHEMA)
    titles = {r["title"] for r in rules["groups"][0]["rules"]}
    assert titles == {"Unanswered mention past SLA", "Pipeline stalled", "DLQ growing"}
    for rule in rules["groups"][0]["rules"]:
        data = {q["refId"]: q for q in rule["data"]}
        assert rule["condition"] in data
        assert data["A"]["model"]["rawSql"] in {q.sql for q in sql.ALERT_QUERIES}
        assert data["A"]["datasourceUid"] == DATASOURCE_UID and data["A"]["relativeTimeRange"]["from"] > 0
        assert data["B"]["model"]["type"] == "threshold" and data["B"]["model"]["expression"] == "A"
        assert rule["dashboardUid"] in {b["uid"] for b in boards().values()}
    unanswered = next(r for r in rules["groups"][0]["rules"] if r["uid"] == "rapport-unanswered-sla")
    assert "$labels.message" in unanswered["annotations"]["description"]
    routes = notifications["policies"][0]["routes"]
    assert {tuple(r["object_matchers"][0]) for r in routes} == {
        ("client_id", "=", c) for c in provision.example_client_ids()}
    receiver_names = {cp["name"] for cp in notifications["contactPoints"]}
    assert notifications["policies"][0]["receiver"] in receiver_names
    assert all(r["receiver"] in receiver_names for r in routes)


def test_schema_refuses_what_grafana_refuses() -> None:
    rules = yaml.safe_load(provision.committed()[provision.RULES_FILE])
    broken = json.loads(json.dumps(rules))
    del broken["groups"][0]["rules"][0]["uid"]  # "rule ... failed to parse: no UID set"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)
    broken = json.loads(json.dumps(rules))
    broken["groups"][0]["rules"][0]["labels"]["x"] = "$HOME"  # would be expanded by Grafana
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)


def test_datasource_and_provider_files() -> None:
    ds = yaml.safe_load(provision.committed()[provision.DATASOURCE_FILE])["datasources"][0]
    assert ds["type"] == PLUGIN_ID and ds["uid"] == DATASOURCE_UID and ds["jsonData"]["protocol"] == "http"
    provider = yaml.safe_load(provision.committed()[provision.PROVIDER_FILE])["providers"][0]
    assert provider["options"]["path"] == provision.CONTAINER_DASHBOARDS


def test_provision_for_a_local_store(tmp_path: Path) -> None:
    target = provision.Target.for_store("http://127.0.0.1:40123", "rapport", "default", "pw", tmp_path)
    files = provision.render(target, ["acme"])
    provision.write(tmp_path, files, mode=0o600)
    ds = yaml.safe_load((tmp_path / provision.DATASOURCE_FILE).read_text())["datasources"][0]
    assert (ds["jsonData"]["host"], ds["jsonData"]["port"]) == ("127.0.0.1", 40123)
    assert ds["secureJsonData"]["password"] == "pw"
    assert (tmp_path / provision.DATASOURCE_FILE).stat().st_mode & 0o077 == 0
    provider = yaml.safe_load((tmp_path / provision.PROVIDER_FILE).read_text())["providers"][0]
    assert Path(provider["options"]["path"]) == (tmp_path / "dashboards").resolve()
    assert (tmp_path / "dashboards" / "agency-overview.json").exists()


# --- the expander, against the plugin's own test cases (pkg/macros/macros_test.go) -------------
FROM = datetime.fromtimestamp(1415792726.371, UTC)
TO = datetime.fromtimestamp(1447328726.371, UTC)


def test_macros_expand_as_the_plugin_does() -> None:
    ctx = TimeContext(FROM, TO, 20)
    assert expand_macros("$__fromTime", ctx) == "toDateTime(1415792726)"
    assert expand_macros("$__toTime_ms", ctx) == "fromUnixTimestamp64Milli(1447328726371)"
    assert expand_macros("$__timeInterval(col)", ctx) == "toStartOfInterval(toDateTime(col), INTERVAL 20 second)"
    assert expand_macros("$__timeInterval_ms(col)", ctx) == (
        "toStartOfInterval(toDateTime64(col, 3), INTERVAL 20000 millisecond)")
    assert expand_macros("$__timeGroup(ts, '5m')", ctx) == "toStartOfInterval(toDateTime(ts), INTERVAL 300 second)"
    assert expand_macros("$__timeGroup(ts, 1h)", ctx) == "toStartOfInterval(toDateTime(ts), INTERVAL 3600 second)"
    assert expand_macros("WHERE $__timeFilter(t)", ctx) == (
        "WHERE t >= toDateTime(1415792726) AND t <= toDateTime(1447328726)")
    nested = expand_macros("SELECT $__timeInterval($__fromTime) AS from_time", TimeContext(FROM, TO, 60))
    assert nested == "SELECT toStartOfInterval(toDateTime(toDateTime(1415792726)), INTERVAL 60 second) AS from_time"
    assert expand_macros("$__interval_s", TimeContext(FROM, TO, 0.2)) == "1"
    assert expand_macros("$__unknown(x)", ctx) == "$__unknown(x)"
    with pytest.raises(MacroError):
        expand_macros("$__timeFilter(a, b)", ctx)


def test_variables_interpolate_as_grafana_does() -> None:
    sql_text = "client_id IN (${client:singlequote}) AND p IN ($platform) AND a = $account"
    out = interpolate_variables(sql_text, {"client": ["acme", "o'hara"], "platform": ["x", "reddit"],
                                           "account": "a1"})
    assert out == "client_id IN ('acme','o\\'hara') AND p IN ('x','reddit') AND a = a1"
    assert interpolate_variables("IN (${client:singlequote})", {"client": []}) == "IN ()"
    assert "$__timeFilter" in interpolate_variables("$__timeFilter(t)", {"client": ["a"]})


def test_no_macro_or_variable_is_left_unexpanded() -> None:
    variables = {"client": ["acme"], "account": ["a"], "platform": ["x"]}
    for query in (*sql.PANEL_QUERIES, *sql.ALERT_QUERIES):
        out = expand(query.sql, variables, TimeContext(FROM, TO, 60))
        assert not re.search(r"\$\{?\w", out), (query.key, out)
