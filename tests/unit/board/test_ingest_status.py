import time
from pathlib import Path

import orjson

from streams.board.ingest_status import ingest_status_lines, ingest_status_table, read_ingest_status


def test_agents_are_read_from_status_files_and_stale_ones_flagged(tmp_path: Path) -> None:
    folder = tmp_path / "agents"
    folder.mkdir()
    now = time.time()
    (folder / "bluesky.json").write_bytes(orjson.dumps({"name": "bluesky", "state": "connected", "lag_s": 1.25,
                                                        "events_per_s": 12.0, "published": 40, "updated_at": now}))
    (folder / "x.json").write_bytes(orjson.dumps({"name": "x", "state": "backoff", "last_error": "HTTP 429",
                                                  "updated_at": now - 600}))
    (folder / "broken.json").write_bytes(b"{not json")
    agents = read_ingest_status(tmp_path)
    assert [a["name"] for a in agents] == ["bluesky", "x"]
    assert agents[1]["state"] == "stale"
    lines = ingest_status_lines(agents)
    assert lines[0] == "agent=bluesky state=connected lag=1.2s events_per_s=12.0 published=40 last_error=-"
    assert "last_error=HTTP 429" in lines[1]
    assert ingest_status_table(agents).row_count == 2


def test_no_status_folder_means_no_agents(tmp_path: Path) -> None:
    assert read_ingest_status(tmp_path) == []
