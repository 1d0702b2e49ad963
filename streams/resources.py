"""The files Rapport reads besides its code: schemas, the example clients file, Grafana files.

The repository keeps them at its top level (``schemas/``, ``clients.example.toml``,
``deploy/grafana/``) as the one source. A built wheel carries copies under ``streams/_data/``
with the same relative paths (setup.py copies them at build time, never into the source tree),
so this module is the only place that knows where they are: the packaged copy when present
(an installed wheel), else the checkout the code runs from (an editable install). Read-only
callers get a :class:`~importlib.resources.abc.Traversable`; callers that need a real path
(a clients file shown in error messages, a directory to compare with) get a :class:`Path`.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from streams.errors import RapportError

PACKAGED = "_data"  # where the wheel carries the repository's top-level files inside `streams`
_CHECKOUT = Path(__file__).resolve().parent.parent


def data_root() -> Traversable:
    """The packaged copy when the wheel carries one, else the repository checkout.

    The packaged copy wins: an installed ``streams`` sits in site-packages, where a top-level
    ``schemas/`` (if any) belongs to some other distribution.
    """
    packaged = files("streams") / PACKAGED
    if packaged.is_dir():
        return packaged
    if (_CHECKOUT / "schemas").is_dir():
        return _CHECKOUT
    raise RapportError(f"no {PACKAGED}/ in the installed streams package and no schemas/ beside it "
                       f"({_CHECKOUT}): reinstall Rapport from a wheel built with setup.py")


def resource(*parts: str) -> Traversable:
    """A file or directory by its path relative to the repository's top level."""
    node = data_root()
    for part in parts:
        node = node / part
    return node


def resource_path(*parts: str) -> Path:
    """Like :func:`resource`, as a file-system path (a wheel installs unzipped, so it has one)."""
    node = resource(*parts)
    if not isinstance(node, Path):
        raise RapportError(f"{'/'.join(parts)} is not on the file system ({node!r}); install Rapport unzipped")
    return node


def migrations_dir() -> Traversable:
    """``schemas/migrations``: the numbered ClickHouse migrations."""
    return resource("schemas", "migrations")


def interaction_schema() -> Traversable:
    """``schemas/interaction.json``: the canonical interaction record."""
    return resource("schemas", "interaction.json")


def example_clients() -> Path:
    """``clients.example.toml``: the clients of the committed Grafana alert routes and of bench."""
    return resource_path("clients.example.toml")


def grafana_dir() -> Path:
    """``deploy/grafana``: the generated Grafana files (dashboards, provisioning)."""
    return resource_path("deploy", "grafana")
