"""The built wheel runs outside the repository: a non-editable install replays, drains and queries.

The wheel is built from a copy of the source tree (the checkout gets no build/ left behind) and
installed with ``--no-deps`` into a fresh venv whose only view of the dependencies is a .pth
line naming this test venv's site-packages: a plain path, so the editable install's own .pth
there is not processed and ``import streams`` can only find the wheel's copy. Everything then
runs from a temporary directory, so the repository's ``schemas/`` is out of reach too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from streams.store.migrations import load_migrations
from tests.support.procs import CASE_VAR, case_env, wait_gone
from tests.support.stack import REPO

pytestmark = pytest.mark.e2e
FIXTURE = REPO.parent / "shared" / "fixtures" / "bluesky_jetstream.jsonl"
# What the build step copies; everything else of the checkout that a build must not see.
SKIP = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "node_modules",
                              ".rapport", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis", "out")
# pip's words for "there is no build backend to be had offline": the only reason to skip.
NO_BACKEND = ("No matching distribution found for setuptools", "Could not find a version that satisfies",
              "No module named 'setuptools'", "BackendUnavailable")


def _build_wheel(tmp: Path) -> Path:
    src, dist = tmp / "src", tmp / "dist"
    shutil.copytree(REPO, src, ignore=SKIP)
    outputs = []
    for isolation in ([], ["--no-build-isolation"]):
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", *isolation,
                               "-w", str(dist), str(src)], capture_output=True, text=True, timeout=240, cwd=tmp)
        if proc.returncode == 0:
            return next(dist.glob("rapport-*.whl"))
        outputs.append(proc.stdout + proc.stderr)
    if all(any(word in out for word in NO_BACKEND) for out in outputs):
        pytest.skip(f"no setuptools to build a wheel with (offline?):\n{outputs[-1][-1500:]}")
    raise AssertionError("pip wheel failed:\n" + "\n----\n".join(out[-3000:] for out in outputs))


def _venv_with_wheel(tmp: Path, wheel: Path, env: dict[str, str]) -> Path:
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib) / "rapport-test-deps.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    # This venv's interpreter runs the test venv's pip (seen through the .pth): the files land in
    # this venv and the `rapport` script's shebang names this venv's python.
    proc = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
                           "--quiet", str(wheel)], capture_output=True, text=True, timeout=240, cwd=tmp, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return venv


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True, cwd=cwd, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def test_installed_wheel_replays_and_queries_outside_the_repo(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    clients = work / "clients.toml"
    shutil.copy(REPO / "clients.example.toml", clients)
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("RAPPORT_")}
    with case_env(base) as env:
        venv = _venv_with_wheel(tmp_path, wheel, env)
        rapport = str(venv / "bin" / "rapport")
        where = _run([str(venv / "bin" / "python"), "-c", "import streams, streams.resources as r; "
                      "print(streams.__file__); print(r.migrations_dir())"], work, env, 60)
        assert where.returncode == 0, where.stderr
        module, migrations = where.stdout.split()
        assert Path(module).is_relative_to(venv) and Path(migrations).is_relative_to(venv), where.stdout
        assert not Path(module).is_relative_to(REPO)

        data = ["--data-dir", str(work / "data"), "--clients", str(clients)]
        replay = _run([rapport, "replay", str(FIXTURE), "--platform", "bluesky", "--drain", *data], work, env, 240)
        assert replay.returncode == 0, replay.stderr[-3000:]
        summary = replay.stdout.strip().splitlines()[-1]
        assert summary.startswith("published=8 "), summary

        query = _run([rapport, "query", "SELECT kind, client_id FROM interactions FINAL ORDER BY created_at",
                      "--format", "json", *data], work, env, 240)
        assert query.returncode == 0, query.stderr[-3000:]
        rows = json.loads(query.stdout)
        assert {"post", "reply", "like", "follow"} <= {r["kind"] for r in rows}
        assert {r["client_id"] for r in rows} == {"acme"}

        ledger = _run([rapport, "query", "SELECT number, checksum FROM schema_migrations FINAL ORDER BY number",
                       "--format", "json", *data], work, env, 240)
        assert ledger.returncode == 0, ledger.stderr[-3000:]
        # The wheel's migrations are the repository's, byte for byte: the checksums agree.
        assert [(r["number"], r["checksum"]) for r in json.loads(ledger.stdout)] == \
            [(m.number, m.checksum) for m in load_migrations()]
        assert not wait_gone(CASE_VAR, env[CASE_VAR], timeout_s=20.0)
