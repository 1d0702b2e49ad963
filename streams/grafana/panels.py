"""Small panel factories with shared defaults, built on grafana-foundation-sdk's builders.

The SDK (``grafana-foundation-sdk==1769699379!11.6.0``: types and builders generated for Grafana
v11.6.x; the PyPI release whose plain ``pip install`` wins, ``!10.1.0``, targets Grafana 10.1) has
no builder for the ClickHouse datasource's query, so :class:`ClickHouseQuery` is one: the query
model the plugin saves (``editorType: sql``, ``rawSql``, ``format`` 0 = time series, 1 = table,
``queryType``) as a cog ``Dataquery`` variant.
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import barchart, dashboard, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm

from streams.grafana.sql import Query

PLUGIN_ID = "grafana-clickhouse-datasource"
DATASOURCE_UID = "rapport-clickhouse"
DATASOURCE = dm.DataSourceRef(type_val=PLUGIN_ID, uid=DATASOURCE_UID)
FORMAT_TIME_SERIES, FORMAT_TABLE = 0, 1  # sqlds FormatQueryOption


class ClickHouseDataquery(cogvariants.Dataquery):
    """A SQL-editor query of the ClickHouse datasource, as the plugin stores it."""

    def __init__(self, ref_id: str, raw_sql: str, fmt: int) -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.format = fmt

    def to_json(self) -> dict[str, object]:
        return {
            "refId": self.ref_id,
            "datasource": {"type": PLUGIN_ID, "uid": DATASOURCE_UID},
            "editorType": "sql",
            "format": self.format,
            "queryType": "timeseries" if self.format == FORMAT_TIME_SERIES else "table",
            "rawSql": self.raw_sql,
        }


class ClickHouseQuery(cogbuilder.Builder[cogvariants.Dataquery]):
    def __init__(self, query: Query, ref_id: str = "A", fmt: int | None = None) -> None:
        chosen = fmt if fmt is not None else (FORMAT_TIME_SERIES if query.time_series else FORMAT_TABLE)
        self._internal = ClickHouseDataquery(ref_id, query.sql, chosen)

    def build(self) -> ClickHouseDataquery:
        return self._internal


def _thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return (dashboard.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE)
            .steps([dm.Threshold(value=value, color=color) for value, color in steps]))


def stat_panel(title: str, query: Query, *, unit: str = "short", description: str = "",
               width: int = 4, height: int = 5, decimals: int | None = None,
               thresholds: tuple[tuple[float | None, str], ...] = ((None, "green"),)) -> stat.Panel:
    panel = (stat.Panel().title(title).description(description).datasource(DATASOURCE)
             .with_target(ClickHouseQuery(query)).unit(unit).span(width).height(height)
             .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
             .color_mode(common.BigValueColorMode.BACKGROUND).graph_mode(common.BigValueGraphMode.NONE)
             .thresholds(_thresholds(*thresholds)).no_value("0"))
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel


def table_panel(title: str, query: Query, *, description: str = "", width: int = 24, height: int = 9,
                overrides: list[tuple[str, dict[str, Any]]] = ()) -> table.Panel:  # type: ignore[assignment]
    panel = (table.Panel().title(title).description(description).datasource(DATASOURCE)
             .with_target(ClickHouseQuery(query)).span(width).height(height))
    for field, props in overrides:
        panel = panel.override_by_name(field, [dm.DynamicConfigValue(id_val=k, value=v) for k, v in props.items()])
    return panel


def series_panel(title: str, query: Query, *, unit: str = "short", description: str = "",
                 width: int = 12, height: int = 8, stack: bool = False) -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).description(description).datasource(DATASOURCE)
             .with_target(ClickHouseQuery(query)).unit(unit).span(width).height(height)
             .line_width(1).fill_opacity(10).show_points(common.VisibilityMode.NEVER)
             .legend(common_builders.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST)
                     .placement(common.LegendPlacement.BOTTOM).show_legend(True)))
    if stack:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    return panel


def bar_panel(title: str, query: Query, *, x_field: str, description: str = "", width: int = 12,
              height: int = 8, unit: str = "short") -> barchart.Panel:
    return (barchart.Panel().title(title).description(description).datasource(DATASOURCE)
            .with_target(ClickHouseQuery(query)).x_field(x_field).unit(unit).span(width).height(height)
            .show_value(common.VisibilityMode.AUTO)
            .legend(common_builders.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST)
                    .placement(common.LegendPlacement.BOTTOM).show_legend(True)))


def query_variable(name: str, label: str, sql: str) -> dashboard.QueryVariable:
    """Multi-select with "All": Grafana then sends every option, quoted by ``:singlequote``."""
    return (dashboard.QueryVariable(name).label(label).datasource(DATASOURCE)
            .query({"refId": f"var-{name}", "queryType": "sql", "rawSql": sql})
            .multi(True).include_all(True).refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
            .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"])))


def custom_variable(name: str, label: str, values: list[str]) -> dashboard.CustomVariable:
    return (dashboard.CustomVariable(name).label(label).values(",".join(values)).multi(True)
            .include_all(True).current(dm.VariableOption(selected=True, text=["All"], value=["$__all"])))
