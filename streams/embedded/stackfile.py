"""``<data dir>/stack.json``: where a running stack serves, so other commands find it."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

STACK_FILE = "stack.json"


@dataclass(frozen=True, slots=True)
class StackInfo:
    broker_url: str
    store_url: str
    pid: int

    def alive(self) -> bool:
        """Whether the supervisor that wrote this file still runs."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def write_stack(data_dir: Path, info: StackInfo) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / STACK_FILE
    tmp = path.with_suffix(".tmp")
    # Only the user reads it: it says where the store listens, next to its credentials file.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(json.dumps(asdict(info), indent=2))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


def read_stack(data_dir: Path) -> StackInfo | None:
    """The running stack of ``data_dir``, or ``None`` when none runs (stale files ignored)."""
    path = data_dir / STACK_FILE
    try:
        info = StackInfo(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    return info if info.alive() else None


def clear_stack(data_dir: Path) -> None:
    (data_dir / STACK_FILE).unlink(missing_ok=True)
