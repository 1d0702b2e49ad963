"""``python -m streams.grafana render|check|provision``: the same commands as ``rapport grafana``."""

from streams.grafana.cli import grafana_app

grafana_app(prog_name="python -m streams.grafana")
