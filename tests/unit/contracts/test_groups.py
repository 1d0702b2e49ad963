"""Worker roles name their consumer groups once; `rapport up` lays its worker slots out from them."""

from __future__ import annotations

from streams.contracts.groups import SPLIT_ROLES, WorkerRole, consumer_group, consumer_groups
from streams.embedded.supervisor import worker_slots


def test_all_keeps_the_app_id_and_each_core_has_its_own_group() -> None:
    assert consumer_group("rapport", WorkerRole.all) == "rapport"  # offsets of existing deployments
    assert consumer_group("rapport", WorkerRole.normalize) == "rapport-normalize"
    assert consumer_group("t1", WorkerRole.detect) == "t1-detect"
    assert consumer_groups("rapport") == ("rapport", "rapport-normalize", "rapport-detect")
    assert len(set(consumer_groups("x"))) == len(WorkerRole)


def test_split_slots_are_one_process_per_core_and_index() -> None:
    slots = worker_slots(2, split=True)
    assert [(s.role, s.index) for s in slots] == [(r, i) for i in range(2) for r in SPLIT_ROLES]
    assert [s.name for s in slots] == ["worker-normalize-0", "worker-detect-0",
                                       "worker-normalize-1", "worker-detect-1"]
    assert slots[0].argv == ["worker", "--agents", "normalize"]
    assert len({s.name for s in slots}) == len(slots)  # one log file each


def test_unsplit_slots_keep_todays_names() -> None:
    slots = worker_slots(2, split=False)
    assert [s.name for s in slots] == ["worker-0", "worker-1"]
    assert all(s.argv == ["worker", "--agents", "all"] for s in slots)
    assert [s.name for s in worker_slots(1, split=True, first=3)] == ["worker-normalize-3", "worker-detect-3"]
