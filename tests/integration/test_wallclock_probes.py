"""Wall-clock probes, as an operator finding what serialises sees them at `/metrics`.

With `TASKAGENT_WALLCLOCK_PROBES=true` a tool turn shows up as event-loop lag samples, as
statement hops on each database connection (queue wait, execution, wake-up) and as lock
waits; without it none of these series exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import LiveServer

pytestmark = pytest.mark.integration

CREATE = "Create a task to call the plumber about the leak, due Friday"


def counts(client: httpx.Client) -> dict[str, float]:
    """The `_count` of every histogram in a scrape, keyed 'name{label}'."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name.endswith("_count"):
                label = sample.labels.get("db") or sample.labels.get("lock") or ""
                found[f"{family.name}{{{label}}}"] = sample.value
    return found


def turn(client: httpx.Client) -> dict[str, Any]:
    """One tool turn through `POST /chat`; the task it creates is in the answer."""
    response = client.post("/chat", json={"message": CREATE}, timeout=60)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert [call["tool"] for call in body["tool_calls"]] == ["create_task"]
    return body


def test_probes_time_the_loop_each_connection_and_the_locks(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "data", env={"TASKAGENT_WALLCLOCK_PROBES": "true"})
    try:
        with httpx.Client(base_url=server.url) as client:
            before = counts(client)
            turn(client)
            after = counts(client)
    finally:
        server.stop()
    grew = {key for key, count in after.items() if count > before.get(key, 0.0)}
    assert "taskagent_event_loop_lag_seconds{}" in grew
    for db in ("checkpoints", "runs", "tasks", "threads"):
        for probe in ("queue_wait", "execute", "wakeup"):
            assert f"taskagent_sqlite_{probe}_seconds{{{db}}}" in grew, (db, probe)
    # Every event-log write takes the run store's lock (a step's checkpoint writes no longer
    # take the saver's: graph/saver_pool.py).
    assert "taskagent_lock_wait_seconds{runs}" in grew


def test_without_the_setting_no_probe_series_exist(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "data")
    try:
        with httpx.Client(base_url=server.url) as client:
            turn(client)
            found = counts(client)
    finally:
        server.stop()
    probes = [
        key
        for key, count in found.items()
        if key.startswith(("taskagent_event_loop_lag", "taskagent_sqlite_", "taskagent_lock_"))
        and count
    ]
    assert probes == []
