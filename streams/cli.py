"""The `rapport` command: one Typer app, and the one place commands are mounted.

Every top-level command is declared here, a thin call into the module that does the work
(``run_*``), with the options of :mod:`streams.commands`; a group of commands (``grafana``,
``ingest``) is a Typer made by :func:`streams.commands.command_group` in its package's
``cli.py`` and mounted below with ``add_typer``. Modules never mount themselves.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from streams.commands import ClientsOpt, DataDir, _clients, _friendly, _settings, command_group, err
from streams.contracts.groups import WorkerRole
from streams.grafana.cli import grafana_app
from streams.ingest.cli import ingest_app

app = command_group("Rapport: real-time conversation analytics (connections, not vanity).")


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


@app.command()
def up(data_dir: DataDir = None, clients: ClientsOpt = None,
       workers: Annotated[int, typer.Option(min=1, help="Workers per role: N normalize + N detect processes "
                                            "(each role its own consumer group); with --no-split, N processes "
                                            "running every agent.")] = 1,
       split: Annotated[bool | None, typer.Option(
           "--split/--no-split", help="Normalize and detect in separate processes (both cores); "
                                      "default: RAPPORT_WORKER_SPLIT (true).", show_default=False)] = None,
       store_port: Annotated[int, typer.Option(help="Store HTTP port (default: a free one).")] = 0,
       broker_port: Annotated[int, typer.Option(help="Broker port (default: a free one).")] = 0,
       ingest: Annotated[bool, typer.Option(
           help="Start the ingest agents the clients file and credentials allow.")] = True) -> None:
    """Run the embedded stack (broker, store, workers) in the foreground; Ctrl-C stops it."""
    from streams.embedded.supervisor import run_up

    with _friendly():
        settings = _settings(data_dir, clients)
        raise typer.Exit(run_up(settings, workers, announce=lambda s: err.print(s),
                                store_port=store_port, broker_port=broker_port, ingest=ingest, split=split))


@app.command()
def broker(data_dir: DataDir = None, clients: ClientsOpt = None,
           port: Annotated[int, typer.Option(help="Port (default: a free one).")] = 0) -> None:
    """Run the embedded Kafka-protocol broker (Tansu); prints its URL first."""
    from streams.contracts.topics import full_names
    from streams.embedded.broker import run_broker

    with _friendly():
        settings = _settings(data_dir, clients)
        raise typer.Exit(run_broker(port, full_names(settings), settings.partitions,
                                    announce=lambda url: print(url, flush=True)))


@app.command()
def store(data_dir: DataDir = None, clients: ClientsOpt = None,
          port: Annotated[int, typer.Option(help="Port (default: a free one).")] = 0,
          host: Annotated[str, typer.Option(help="Address to bind (default: loopback only).")] = "127.0.0.1",
          allow_remote: Annotated[bool, typer.Option(
              "--allow-remote", help="Allow a non-loopback --host (needs both store passwords set).")] = False,
          ) -> None:
    """Serve the embedded store (chDB) over the ClickHouse HTTP interface; prints its URL first."""
    from streams.embedded.credentials import load_or_create
    from streams.embedded.store import check_bind, run_store

    with _friendly():
        settings = _settings(data_dir, clients)
        check_bind(host, allow_remote, settings)
        users = load_or_create(Path(settings.data_dir), settings)
        run_store(Path(settings.data_dir) / "store", host, port,
                  lambda url: print(url, flush=True), users=users,
                  allowed_origins=settings.store_allowed_origins)


@app.command()
def worker(data_dir: DataDir = None, clients: ClientsOpt = None,
           agents: Annotated[WorkerRole, typer.Option(
               help="all: every agent in one process (consumer group RAPPORT_APP_ID); normalize or detect: "
                    "one core of the pipeline, its own group (RAPPORT_APP_ID-normalize, -detect).")]
           = WorkerRole.all) -> None:
    """Run one faust worker against RAPPORT_BROKER_URL and RAPPORT_STORE_URL."""
    from streams.store.client import broker_url, store_url
    from streams.worker import run_worker

    with _friendly():
        settings = _settings(data_dir, clients)
        run_worker(settings, _clients(settings), broker_url(settings), store_url(settings), agents)


@app.command()
def migrate(data_dir: DataDir = None, clients: ClientsOpt = None) -> None:
    """Apply the ClickHouse migrations in schemas/migrations (idempotent)."""
    from streams.store.client import store_url
    from streams.store.migrations import migrate as run

    with _friendly():
        settings = _settings(data_dir, clients)
        done = run(store_url(settings), settings)
        err.print(f"applied {len(done)} migration(s)" + "".join(f"\n  {m.number:04d}_{m.name}" for m in done))


@app.command()
def topics(data_dir: DataDir = None, clients: ClientsOpt = None) -> None:
    """Create every Rapport topic that does not exist yet (Apache Kafka or the embedded broker)."""
    from streams.deploy_cmds import create_topics

    with _friendly():
        settings = _settings(data_dir, clients)
        created = create_topics(settings)
        err.print(f"created {len(created)} topic(s)" + "".join(f"\n  {t}" for t in created))


@app.command()
def ping(data_dir: DataDir = None, clients: ClientsOpt = None) -> None:
    """Exit 0 when the broker and the store both answer, else 1 (the compose workers' healthcheck)."""
    from streams.deploy_cmds import ping as answers

    with _friendly():
        raise typer.Exit(0 if answers(_settings(data_dir, clients)) else 1)


@app.command()
def replay(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                                help="JSONL of raw payloads (plain, gzip or zstd).")],
           platform: Annotated[str, typer.Option(help="bluesky | mastodon | x | facebook | instagram | reddit")],
           data_dir: DataDir = None, clients: ClientsOpt = None,
           rate: Annotated[float | None, typer.Option(help="Payloads per second (default: unpaced).")] = None,
           follow: Annotated[bool, typer.Option(help="Keep reading as the file grows.")] = False,
           drain: Annotated[bool, typer.Option(
               help="Start a stack if none runs, wait until all is stored (publishing again what the "
                    "archive lacks), stop.")] = False,
           source: Annotated[str, typer.Option(help="Source label of the payloads.")] = "replay") -> None:
    """Publish a JSONL file of raw payloads to the running stack (or, with --drain, one of its own).

    No line stops a replay: a bad line dead-letters by itself, a payload over the record limit
    is refused with its line number. If the stack is restarted meanwhile, replay reconnects to
    it through stack.json. Exit 0 when every line was published or refused with its reason.
    """
    from streams.ingest.replay_cmd import run_replay

    with _friendly():
        settings = _settings(data_dir, clients)
        raise typer.Exit(run_replay(settings, file, platform, rate=rate, follow=follow, drain=drain,
                                    source=source, console=err))


@app.command()
def simulate(data_dir: DataDir = None, clients: ClientsOpt = None,
             seed: Annotated[int, typer.Option(help="Random seed (same seed, same traffic).")] = 0,
             rate: Annotated[float, typer.Option(help="Events per second.")] = 50.0,
             count: Annotated[int | None, typer.Option(help="Stop after N events.")] = None,
             duration: Annotated[float | None, typer.Option(help="Stop after S seconds.")] = None) -> None:
    """Publish realistic simulated traffic for the clients file to the running stack."""
    from streams.simulator.command import run_simulate

    with _friendly():
        settings = _settings(data_dir, clients)
        run_simulate(settings, _clients(settings), seed=seed, rate=rate, count=count, duration=duration,
                     console=err)


@app.command()
def query(sql: Annotated[str, typer.Argument(help="SQL to run on the store.")],
          data_dir: DataDir = None, clients: ClientsOpt = None,
          fmt: Annotated[OutputFormat, typer.Option("--format", help="table | json | csv")] = OutputFormat.table,
          write: Annotated[bool, typer.Option(
              "--write", help="Log in as the pipeline's user (read-write); default: the reader.")] = False,
          ) -> None:
    """Run SQL on the running stack's store, or open the store itself when none runs."""
    from streams.query_cmd import run_query

    with _friendly():
        settings = _settings(data_dir, clients)
        run_query(settings, sql, fmt.value, err, role="pipeline" if write else "reader")


@app.command()
def demo(data_dir: DataDir = None, clients: ClientsOpt = None,
         duration: Annotated[float | None, typer.Option(help="Exit after S seconds with a summary.")] = None,
         headless: Annotated[bool, typer.Option(help="Print summary lines instead of the live board.")] = False,
         rate: Annotated[float, typer.Option(help="Simulated events per second.")] = 40.0,
         seed: Annotated[int, typer.Option(help="Simulator seed.")] = 0,
         ingest: Annotated[bool, typer.Option(
             help="Also start the ingest agents the clients file and credentials allow.")] = False) -> None:
    """`rapport up` + the simulator + a live terminal board per client."""
    from streams.board.demo import run_demo

    with _friendly():
        settings = _settings(data_dir, clients)
        raise typer.Exit(run_demo(settings, duration=duration, headless=headless, rate=rate, seed=seed,
                                  ingest=ingest))


@app.command()
def bench(data_dir: DataDir = None, clients: ClientsOpt = None,
          events: Annotated[int | None, typer.Option(
              help="Events to push through the pipeline (default 200,000; with --soak 2,000,000; "
                   "with --scale 1,000,000).")] = None,
          soak: Annotated[bool, typer.Option(
              help="Instead: months of event time through one worker, its RSS after each round.")] = False,
          days: Annotated[float, typer.Option(help="--soak: days of event time the events span.")] = 120.0,
          rounds: Annotated[int, typer.Option(help="--soak: publish-and-drain rounds (RSS read after each).")] = 40,
          scale: Annotated[bool, typer.Option(
              "--scale", help="Instead: backfill months of traffic, then time every board query and the "
                              "report (streams/bench_scale.py).")] = False,
          runs: Annotated[int, typer.Option(min=1, help="--scale: runs of each query timed.")] = 7,
          keep: Annotated[Path | None, typer.Option(
              help="--scale: backfill into DIR and keep it there; a later run with the same DIR migrates the "
                   "kept store and times it again, without a backfill.")] = None,
          ) -> None:
    """Measure raw consume, pipeline throughput and ingest->queryable latency (JSON line last)."""
    with _friendly():
        settings = _settings(data_dir, clients)
        if soak and scale:
            raise typer.BadParameter("--soak and --scale are two different benches: pick one")
        if soak:
            from streams.bench_soak import run_soak

            run_soak(settings, events=events or 2_000_000, days=days, rounds=rounds, console=err)
            return
        if scale:
            from streams.bench_scale import run_scale

            run_scale(settings, events=events or 1_000_000, console=err, runs=runs, keep=keep)
            return
        from streams.bench import run_bench

        run_bench(settings, events=events or 200_000, console=err)


@app.command()
def chaos(data_dir: DataDir = None, clients: ClientsOpt = None,
          events: Annotated[int, typer.Option(help="Simulated events to send.")] = 20_000,
          faults: Annotated[int, typer.Option(help="Faults to inject (every kind once when >= 5).")] = 6,
          seed: Annotated[int, typer.Option(help="Seed of the traffic and the fault plan.")] = 0,
          rate: Annotated[float, typer.Option(
              help="Events per second sent (the run lasts at least 15 s per fault).")] = 1000.0,
          workers: Annotated[int, typer.Option(min=1, help="The stack's `rapport up --workers` (per role when "
                                                            "split, RAPPORT_WORKER_SPLIT).")] = 2,
          edges: Annotated[bool, typer.Option(
              "--edges", help="Send Facebook/Instagram as signed webhook deliveries and Bluesky through a "
                              "loopback fake Jetstream, to the stack's own agents, instead of replaying them.")]
          = False) -> None:
    """Fault harness: traffic + hostile payloads through `rapport up --workers 2` while workers,
    the store, the broker and the whole stack are killed or stopped; then the store is compared
    with the truth. Last stdout line: one JSON object; exit 0 only when nothing is lost or
    duplicated and every detection table equals its recomputation. With --edges, every delivery
    answered 200 and every event the fake Jetstream served must be archived once too."""
    from streams.chaos.runner import run_chaos

    with _friendly():
        settings = _settings(data_dir, clients)
        raise typer.Exit(run_chaos(settings, events=events, faults=faults, seed=seed, rate=rate, console=err,
                                         workers=workers, edges=edges))


@app.command()
def report(
    client: Annotated[str | None, typer.Option("--client", help="Only this client id.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
    data_dir: DataDir = None, clients: ClientsOpt = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Range start, ISO 8601 (UTC unless it names a zone); inclusive.")] = None,
    until: Annotated[str | None, typer.Option(
        "--until", help="Range end, ISO 8601 (UTC unless it names a zone); inclusive.")] = None,
) -> None:
    """Per client and account: threads, conversations, turns, returning people, inbound,
    answered, reply rate within SLA, first response (wall and business), unanswered, alerts,
    and vanity signals beside them (docs/metrics.md defines each)."""
    from rich.console import Console

    from streams.errors import ConfigError
    from streams.report import parse_instant, run_report

    with _friendly():
        if fmt not in ("table", "json"):
            raise ConfigError(f"--format must be table or json, not {fmt!r}")
        run_report(_settings(data_dir, clients), client, fmt, Console(stderr=True),
                   parse_instant(since, "--since"), parse_instant(until, "--until"))


app.add_typer(grafana_app, name="grafana")
app.add_typer(ingest_app, name="ingest")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
