"""Worker roles and the consumer group each one commits under, named once.

A worker runs every agent (``all``), or one of the pipeline's two cores: ``normalize``
(raw topics -> archive + ``interactions``) or ``detect`` (``interactions`` -> store ->
detection). Each role is its own consumer group, so each scales by itself and a split stack
uses both cores of a machine (issue 11, lever 1). ``all`` keeps the app id as its group, so a
deployment that ran one kind of worker before keeps its committed offsets.

Whoever reads committed offsets (``--drain``, the benches, chaos) asks every group in
:func:`consumer_groups`: only one mode runs at a time, and a group that never consumed a
topic has every record of it as lag, so the smallest lag is the pipeline's.

Pure: no faust, no Kafka client.
"""

from __future__ import annotations

from enum import StrEnum


class WorkerRole(StrEnum):
    all = "all"
    normalize = "normalize"
    detect = "detect"


SPLIT_ROLES: tuple[WorkerRole, ...] = (WorkerRole.normalize, WorkerRole.detect)


def consumer_group(app_id: str, role: WorkerRole) -> str:
    """The consumer group (and faust app id) of a worker of ``role``."""
    return app_id if role is WorkerRole.all else f"{app_id}-{role.value}"


def consumer_groups(app_id: str) -> tuple[str, ...]:
    """Every group a worker of this app id can commit under, ``all``'s first."""
    return tuple(consumer_group(app_id, role) for role in WorkerRole)
