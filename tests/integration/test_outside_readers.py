"""Another process may read the data dir while the server runs (the sqlite3 shell, a backup).

When that process closes its connection, SQLite lets it checkpoint and delete the WAL only if
no other connection still holds the file: the server's changes after that must still reach
every reader, not vanish into a WAL file that has been deleted while the server writes to it.
"""

import sqlite3
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import LiveServer

pytestmark = pytest.mark.integration


def titles_read_by_another_process(data_dir: Path) -> list[str]:
    """The task titles as an operator's own sqlite3 connection reads them, then closes."""
    with closing(sqlite3.connect(data_dir / "tasks.sqlite")) as conn:
        return [row[0] for row in conn.execute("SELECT title FROM tasks ORDER BY seq")]


def test_changes_after_another_process_read_the_tasks_reach_every_reader(
    live_server: LiveServer,
) -> None:
    data_dir = live_server.data_dir
    with httpx.Client(base_url=live_server.url, timeout=10) as api:
        rent = api.post("/tasks", json={"title": "Pay rent"})
        assert rent.status_code == 201
        assert titles_read_by_another_process(data_dir) == ["Pay rent"]

        assert api.post("/tasks", json={"title": "Call mom"}).status_code == 201
        assert api.delete(f"/tasks/{rent.json()['id']}").status_code == 200
        assert titles_read_by_another_process(data_dir) == ["Call mom"]
        assert (data_dir / "tasks.sqlite-wal").exists()

        # The server reads what it wrote, and so does the next reader.
        listed = api.get("/tasks").json()
        assert [t["title"] for t in listed["tasks"]] == ["Call mom"]
        assert titles_read_by_another_process(data_dir) == ["Call mom"]

    # After a clean stop every change is in the file itself.
    live_server.stop()
    assert titles_read_by_another_process(data_dir) == ["Call mom"]
