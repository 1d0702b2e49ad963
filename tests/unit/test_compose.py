"""docker-compose.yml agrees with the code: settings, topics, ports, volumes, provisioning paths.

No Docker engine runs here; `docker-compose config` (Debian's docker-compose 1.29, offline)
validates the file with every profile enabled where that binary is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from streams import deploy_cmds
from streams.contracts.topics import TOPICS, full_names
from streams.grafana import provision
from streams.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
RAPPORT_SERVICES = {name for name, s in SERVICES.items() if s.get("image", "").startswith("rapport:")}
WORKERS = {"worker-normalize": "normalize", "worker-detect": "detect"}  # service -> `--agents` role
ENV_EXAMPLE = dict(line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
FIELDS = {f"RAPPORT_{name.upper()}" for name in Settings.model_fields}
PROFILES = ("bluesky", "mastodon", "x", "reddit", "webhooks")
_INTERPOLATED = re.compile(r"\$\{(\w+)")


def env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in (SERVICES[service].get("environment") or {}).items()}


def all_strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in [str(k), *all_strings(v)]]
    if isinstance(node, list):
        return [s for v in node for s in all_strings(v)]
    return [str(node)]


def test_every_rapport_variable_is_a_settings_field() -> None:
    named = {s for s in all_strings(COMPOSE) if s.startswith("RAPPORT_")}
    named |= {m for s in all_strings(COMPOSE) for m in _INTERPOLATED.findall(s) if m.startswith("RAPPORT_")}
    named |= {k for k in ENV_EXAMPLE if k.startswith("RAPPORT_")}
    assert named, "nothing found"
    unknown = named - FIELDS
    assert not unknown, f"not fields of streams/settings.py: {sorted(unknown)}"
    for service in RAPPORT_SERVICES:  # and each value parses as the setting it sets
        values = {k.removeprefix("RAPPORT_").lower(): v for k, v in env(service).items()
                  if k.startswith("RAPPORT_") and "${" not in v}
        Settings(**values)


def test_example_env_values_are_valid_settings() -> None:
    values = {k.removeprefix("RAPPORT_").lower(): v for k, v in ENV_EXAMPLE.items()
              if k.startswith("RAPPORT_") and v}
    settings = Settings(**values)
    assert settings.partitions == int(ENV_EXAMPLE["RAPPORT_PARTITIONS"])


def test_topics_one_shot_creates_every_topic_with_configured_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    topics = SERVICES["topics"]
    assert "entrypoint" not in topics and topics["command"] == ["topics"]  # the image's entrypoint: rapport
    seen: dict[str, Any] = {}

    def fake_ensure(url: str, names: list[str], partitions: int, replication: int = 1) -> list[str]:
        seen.update(url=url, names=list(names), partitions=partitions, replication=replication)
        return list(names)

    monkeypatch.setattr("streams.kafka_admin.wait_for_broker", lambda url, timeout_s=30.0: None)
    monkeypatch.setattr("streams.kafka_admin.ensure_topics", fake_ensure)
    compose_env = {k.removeprefix("RAPPORT_").lower(): v for k, v in env("topics").items()}
    compose_env.update(partitions=ENV_EXAMPLE["RAPPORT_PARTITIONS"], topic_prefix=ENV_EXAMPLE["RAPPORT_TOPIC_PREFIX"],
                       replication_factor=ENV_EXAMPLE["RAPPORT_REPLICATION_FACTOR"], store_password="x")
    compose_env = {k: v for k, v in compose_env.items() if "${" not in v}
    settings = Settings(**compose_env)
    deploy_cmds.create_topics(settings)
    assert seen["names"] == full_names(settings) and len(seen["names"]) == len(TOPICS)
    assert seen["partitions"] == int(ENV_EXAMPLE["RAPPORT_PARTITIONS"])
    assert seen["url"] == "kafka://kafka:9092"


def test_ports_agree_with_the_code() -> None:
    worker = env("worker-normalize")
    broker = urlparse(worker["RAPPORT_BROKER_URL"])
    store = urlparse(worker["RAPPORT_STORE_URL"])
    assert (broker.hostname, store.hostname) == ("kafka", "clickhouse")
    kafka_env = dict(line.split("=", 1) for line in (REPO / "deploy/kafka/kafka.env").read_text().splitlines()
                     if line and not line.startswith("#"))
    assert f"PLAINTEXT://kafka:{broker.port}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    assert f"PLAINTEXT://:{broker.port}" in kafka_env["KAFKA_LISTENERS"]
    assert kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "127.0.0.1:8123:8123" in SERVICES["clickhouse"]["ports"] and store.port == 8123
    datasource = yaml.safe_load(provision.committed()[provision.DATASOURCE_FILE])["datasources"][0]["jsonData"]
    assert (datasource["host"], datasource["port"]) == (store.hostname, store.port)
    webhooks = env("ingest-webhooks")
    assert int(webhooks["RAPPORT_WEBHOOK_PORT"]) == Settings().webhook_port
    assert any(p.endswith(f":{webhooks['RAPPORT_WEBHOOK_PORT']}") for p in SERVICES["ingest-webhooks"]["ports"])
    assert any(p.endswith(":3000") for p in SERVICES["grafana"]["ports"])


def test_volumes_and_provisioning_paths_exist() -> None:
    declared = set(COMPOSE["volumes"])
    used = set()
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source, target = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", volume).split(":")[:2]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name}: bind source {source} missing"
            else:
                used.add(source)
    assert used == declared, f"named volumes used {used} vs declared {declared}"
    grafana = {v.split(":")[1]: v.split(":")[0] for v in SERVICES["grafana"]["volumes"]}
    assert grafana["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    assert grafana[provision.CONTAINER_DASHBOARDS] == "./deploy/grafana/dashboards"
    assert env("grafana")["GF_PATHS_PROVISIONING"] == "/etc/grafana/provisioning"
    for rel in (provision.DATASOURCE_FILE, provision.PROVIDER_FILE, provision.RULES_FILE, provision.NOTIFICATIONS_FILE):
        assert (REPO / "deploy/grafana" / rel).exists(), rel
    datasource = (REPO / "deploy/grafana" / provision.DATASOURCE_FILE).read_text()
    for var in set(re.findall(r"\$\{(\w+)\}", datasource)):
        assert var in env("grafana"), f"the datasource expands {var}, which grafana's environment lacks"


def test_services_are_pinned_healthchecked_and_ordered() -> None:
    for name, service in SERVICES.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), name
    for name in ("kafka", "clickhouse", "grafana", *WORKERS):
        assert "healthcheck" in SERVICES[name], name
    for name in ("migrate", "topics"):
        assert SERVICES[name]["restart"] == "no"
    for name, role in WORKERS.items():
        worker = SERVICES[name]
        assert "container_name" not in worker and "ports" not in worker, f"{name} must scale (--scale {name}=N)"
        assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        # One app id for every worker: each role's group is derived from it (streams/contracts/groups.py).
        assert env(name)["RAPPORT_APP_ID"].startswith("${RAPPORT_APP_ID"), name
        assert worker["command"] == ["worker", "--agents", role], name
    assert "worker" not in SERVICES, "the two cores run as their own services"
    profiles = {name: s.get("profiles") for name, s in SERVICES.items() if s.get("profiles")}
    assert {p for ps in profiles.values() for p in ps} == set(PROFILES)
    for name, ps in profiles.items():
        assert SERVICES[name]["command"] == ["ingest", ps[0]], name


def mounted(args: list[str]) -> bool:
    """Whether ``rapport ARGS`` names a command the CLI mounts (options after it left aside)."""
    from typer.main import get_command

    from streams.cli import app

    command: Any = get_command(app)
    words = [a for a in args if not a.startswith("-")]
    while words and hasattr(command, "commands"):  # a group (typer carries its own click)
        command = command.commands.get(words.pop(0))
    return command is not None and not hasattr(command, "commands")


def test_compose_runs_only_commands_the_cli_mounts() -> None:
    """The rapport image's entrypoint is `rapport`: every service command and the workers'
    healthcheck must be one of its commands, not a module of its own."""
    rapport = {name: s for name, s in SERVICES.items() if s["image"].startswith("rapport:")}
    assert {"migrate", "topics", *WORKERS, *(f"ingest-{p}" for p in PROFILES)} <= set(rapport)
    for name, service in rapport.items():
        assert "entrypoint" not in service, name
        assert mounted(service["command"]), f"{name}: rapport {' '.join(service['command'])} is no command"
    for name in WORKERS:
        check = SERVICES[name]["healthcheck"]["test"]
        assert check[:2] == ["CMD", "rapport"] and mounted(check[2:]), check
    assert not mounted(["ingest"]) and not mounted(["no-such-command"])  # the walk itself tells them apart


@pytest.mark.skipif(shutil.which("docker-compose") is None,
                    reason="docker-compose not installed (apt-get install -y docker-compose)")
def test_docker_compose_config_accepts_every_profile(tmp_path: Path) -> None:
    env_file = tmp_path / "compose.env"
    filled = {k: (v or "set-for-validation") for k, v in ENV_EXAMPLE.items()}
    env_file.write_text("".join(f"{k}={v}\n" for k, v in filled.items()))
    args = ["docker-compose", "--env-file", str(env_file), "-f", str(REPO / "docker-compose.yml")]
    for profile in PROFILES:
        args += ["--profile", profile]
    done = subprocess.run([*args, "config"], capture_output=True, text=True, timeout=60, check=False, cwd=REPO)
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    assert set(resolved["services"]) == set(SERVICES)
    missing = subprocess.run([*args[:1], "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
                             capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
                             env={"PATH": "/usr/bin:/bin"})
    assert missing.returncode != 0 and "RAPPORT_STORE_PASSWORD" in missing.stderr, "secrets must be required"
