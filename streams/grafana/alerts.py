"""Grafana-managed alert rules, the webhook contact point and the notification policy.

Built with grafana-foundation-sdk's alerting builders (they model Grafana's provisioning HTTP
API) and written in the shape of Grafana's *file* provisioning (``apiVersion: 1`` with
``groups``, ``contactPoints``, ``policies``; pkg/services/provisioning/alerting in Grafana):
rule groups name their folder by title, contact points group their receivers under a name.

Every SQL result row of a rule is one alert instance: its string columns become labels
(``client_id``, ``account_id``, ``platform``, ``event_id``, ``message``), its one numeric column
the value the threshold expression ``B`` tests. Grafana expands ``$VAR`` environment variables in
file-provisioned labels and policies, so no ``$`` may appear there; annotations only expand
``${VAR}``, which leaves ``{{ $labels.x }}`` alone.
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import alerting, expr
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import alerting as am

from streams.grafana import sql
from streams.grafana.boards import CLIENT_UID, PIPELINE_UID
from streams.grafana.panels import DATASOURCE_UID, FORMAT_TABLE, ClickHouseQuery

FOLDER = "Rapport"
GROUP = "rapport"
RECEIVER = "Rapport webhook"
RECEIVER_UID = "rapport-webhook"
DEFAULT_WEBHOOK_URL = "http://127.0.0.1:9099/rapport/alerts"
EXPR = {"type": "__expr__", "uid": "__expr__"}
STALL_MINUTES = 15
UNANSWERED_WINDOW_S = 7 * 86400  # breaches opened in the last week alert; older ones stay on the board


def _rule(uid: str, title: str, query: sql.Query, window_s: int, threshold: float, *, for_val: str,
          no_data: str, summary: str, description: str, labels: dict[str, str],
          dashboard_uid: str, panel_id: int) -> alerting.Rule:
    data_query = (alerting.Query("A").datasource_uid(DATASOURCE_UID)
                  .relative_time_range(am.RelativeTimeRange(from_val=window_s, to=0))
                  .model(ClickHouseQuery(query, fmt=FORMAT_TABLE)))
    threshold_expr = (alerting.Query("B").datasource_uid("__expr__")
                      .model(expr.TypeThreshold().expression("A").conditions([
                          expr.ExprTypeThresholdConditions().evaluator(
                              expr.ExprTypeThresholdConditionsEvaluator().type("gt").params([threshold]))])))
    return (alerting.Rule(title).uid(uid).condition("B").with_query(data_query).with_query(threshold_expr)
            .for_val(for_val).no_data_state(no_data).exec_err_state("Error")  # type: ignore[arg-type]
            .labels({"team": "rapport", **labels}).is_paused(False)
            .annotations({"summary": summary, "description": description,
                          "__dashboardUid__": dashboard_uid, "__panelId__": str(panel_id)}))


def rules() -> list[alerting.Rule]:
    return [
        _rule("rapport-unanswered-sla", "Unanswered mention past SLA", sql.ALERT_UNANSWERED,
              UNANSWERED_WINDOW_S, 0, for_val="0s", no_data="OK",
              summary="{{ $labels.client_id }}: unanswered on {{ $labels.platform }} past its SLA",
              description=('"{{ $labels.message }}" to account {{ $labels.account_id }} is overdue by '
                           '{{ printf "%.0f" $values.A.Value }} min (event {{ $labels.event_id }}).'),
              labels={"rapport_rule": "unanswered", "severity": "warning"},
              dashboard_uid=CLIENT_UID, panel_id=1),
        _rule("rapport-pipeline-stalled", "Pipeline stalled", sql.ALERT_STALLED, 3600, STALL_MINUTES,
              for_val="5m", no_data="OK",
              summary="No interactions stored for {{ printf \"%.0f\" $values.A.Value }} min while workers run",
              description=("Workers report metrics but nothing was ingested: check the ingest agents "
                           "(rapport ingest ...) and their credentials."),
              labels={"rapport_rule": "stalled", "severity": "critical"},
              dashboard_uid=PIPELINE_UID, panel_id=1),
        _rule("rapport-dlq-growing", "DLQ growing", sql.ALERT_DLQ, 600, 0, for_val="5m", no_data="OK",
              summary="{{ printf \"%.0f\" $values.A.Value }} payloads dead-lettered in the last 10 min",
              description="See Pipeline health > Latest dead letters for the reasons.",
              labels={"rapport_rule": "dlq", "severity": "warning"},
              dashboard_uid=PIPELINE_UID, panel_id=5),
    ]


def _json(builder: Any) -> Any:
    import json

    return json.loads(json.dumps(builder.build(), cls=JSONEncoder))


def _file_rule(rule: dict[str, Any]) -> dict[str, Any]:
    data = []
    for query in rule["data"]:
        model = dict(query["model"])
        model["refId"] = query["refId"]
        if query["datasourceUid"] == "__expr__":
            model["datasource"] = EXPR
        entry = {"refId": query["refId"], "datasourceUid": query["datasourceUid"], "model": model}
        entry["relativeTimeRange"] = query.get("relativeTimeRange", {"from": 0, "to": 0})
        data.append(entry)
    annotations = dict(rule["annotations"])
    out = {key: rule[key] for key in ("uid", "title", "condition", "noDataState", "execErrState", "for",
                                       "labels", "isPaused")}
    out["dashboardUid"] = annotations.pop("__dashboardUid__")
    out["panelId"] = int(annotations.pop("__panelId__"))
    out["annotations"] = annotations
    out["data"] = data
    return out


def alert_rules_file(interval: str = "1m") -> dict[str, Any]:
    """The rule group, as a provisioning file."""
    return {"apiVersion": 1, "groups": [{
        "orgId": 1, "name": GROUP, "folder": FOLDER, "interval": interval,
        "rules": [_file_rule(_json(rule)) for rule in rules()],
    }]}


def notifications_file(client_ids: list[str], webhook_url: str = DEFAULT_WEBHOOK_URL) -> dict[str, Any]:
    """The webhook contact point and a policy tree with one route per client label."""
    point = _json(alerting.ContactPoint().name(RECEIVER).uid(RECEIVER_UID).type("webhook")
                  .settings({"url": webhook_url, "httpMethod": "POST"}).disable_resolve_message(False))
    per_client: list[cogbuilder.Builder[am.NotificationPolicy]] = [
        alerting.NotificationPolicy().receiver(RECEIVER).object_matchers([["client_id", "=", client]])
                  .group_by(["alertname", "client_id"]) for client in client_ids]
    policy = _json(alerting.NotificationPolicy().receiver(RECEIVER)
                   .group_by(["grafana_folder", "alertname", "client_id"])
                   .group_wait("30s").group_interval("5m").repeat_interval("4h").routes(per_client))
    return {
        "apiVersion": 1,
        "contactPoints": [{"orgId": 1, "name": point["name"], "receivers": [{
            "uid": point["uid"], "type": point["type"], "settings": point["settings"],
            "disableResolveMessage": point["disableResolveMessage"]}]}],
        "policies": [{"orgId": 1, **policy}],
    }
