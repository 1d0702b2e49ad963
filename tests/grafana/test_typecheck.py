"""The dashboards type-check against Grafana's published schema (npm @grafana/schema + tsc).

deploy/grafana/typecheck pins @grafana/schema (the Grafana line the SDK targets, 11.6) and
typescript with a lockfile; this test installs them with ``npm ci`` (the project's own files)
and runs ``npm run check``. Skipped only where npm is absent; CI machines have it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from streams.grafana.provision import DEPLOY_DIR

TYPECHECK = DEPLOY_DIR / "typecheck"
pytestmark = pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def installed() -> Path:
    lock = TYPECHECK / "package-lock.json"
    stamp = TYPECHECK / "node_modules" / ".rapport-lock"
    if not stamp.exists() or stamp.read_text() != lock.read_text():
        done = _run(["npm", "ci", "--no-audit", "--no-fund"], TYPECHECK)
        assert done.returncode == 0, done.stdout + done.stderr
        stamp.write_text(lock.read_text())
    return TYPECHECK


def test_dashboards_type_check(installed: Path) -> None:
    done = _run(["npm", "run", "--silent", "check"], installed)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(list((installed / "generated").glob("*.ts"))) == 3


def test_the_check_catches_a_wrong_dashboard(installed: Path, tmp_path: Path) -> None:
    work = tmp_path / "tc"
    work.mkdir()
    for name in ("gen.mjs", "loose.ts", "tsconfig.json", "package.json"):
        shutil.copy(installed / name, work / name)
    (work / "node_modules").symlink_to(installed / "node_modules")
    boards = tmp_path / "boards"
    boards.mkdir()
    board = json.loads((DEPLOY_DIR / "dashboards" / "agency-overview.json").read_text())
    board["panels"][0]["gridPos"]["w"] = "wide"  # a string where the schema has a number
    board["graphTooltip"] = 7  # not a DashboardCursorSync
    (boards / "bad.json").write_text(json.dumps(board))
    assert _run(["node", "gen.mjs", str(boards)], work).returncode == 0
    done = _run(["npx", "--no-install", "tsc", "--noEmit", "-p", "tsconfig.json"], work)
    assert done.returncode != 0
    assert "generated/bad.ts" in done.stdout, done.stdout
    assert "not assignable to type 'DashboardCursorSync" in done.stdout, done.stdout
    assert "Type 'string' is not assignable to type 'number'" in done.stdout, done.stdout
