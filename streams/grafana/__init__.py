"""Grafana boards, alert rules and provisioning as code (rendered into ``deploy/grafana/``).

``sql`` holds every query, ``macros`` expands them as Grafana and its ClickHouse datasource do,
``panels`` and ``boards`` build the dashboards, ``alerts`` the alerting resources, ``provision``
renders the files and ``cli`` is ``rapport grafana``. See docs/grafana.md.
"""
