"""Size limits through a real server: at the door (body, headers) and per field.

A request over a limit is answered 413 (body), 431 (headers) or 422 (a field) with a
sentence, before the key is checked where the door refuses it, and nothing is stored.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.obedient import ObedientOpenAIServer
from tests.integration.conftest import LiveServer

pytestmark = pytest.mark.integration

KEYS = "k-alice-lim-0000:alice:write,k-root-lim-0000:root:admin"
ALICE = {"X-Api-Key": "k-alice-lim-0000"}
MIB = 1024 * 1024


def rows(data_dir: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows read through a read-only connection of our own."""
    uri = f"file:{data_dir / 'tasks.sqlite'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("limits") / "data", env={"TASKAGENT_API_KEYS": KEYS})
    yield live
    live.stop()


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """A body of `total` bytes sent chunked (no Content-Length), made as it is sent."""
    piece = b"x" * size
    for _ in range(total // size):
        yield piece


def test_a_120_mb_chunked_body_is_refused_at_once_while_health_stays_fast(
    server: LiveServer,
) -> None:
    latencies: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not stop.is_set():
                began = time.perf_counter()
                assert client.get("/health").status_code == 200
                latencies.append(time.perf_counter() - began)
                time.sleep(0.02)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        time.sleep(0.2)
        began = time.perf_counter()
        with httpx.Client(base_url=server.url, timeout=20) as client:
            refused = client.post(
                "/chat",
                content=chunks(120 * MIB),
                headers={**ALICE, "content-type": "application/json"},
            )
        took = time.perf_counter() - began
        time.sleep(0.2)
    finally:
        stop.set()
        prober.join(timeout=15)
    assert refused.status_code == 413
    assert refused.json()["detail"] == "Request body is over the limit of 1048576 bytes."
    assert took < 3, f"the refusal took {took:.1f}s"
    assert latencies and max(latencies) < 1, f"/health took up to {max(latencies):.2f}s"


def test_a_declared_oversized_body_is_refused_before_the_key_is_checked(
    server: LiveServer,
) -> None:
    failed_logins = rows(server.data_dir, "SELECT count(*) FROM audit WHERE kind='login_failed'")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        refused = client.post(
            "/chat",
            content=b"{" + b" " * (2 * MIB) + b"}",
            headers={"X-Api-Key": "wrong-key", "content-type": "application/json"},
        )
    assert refused.status_code == 413
    assert refused.json()["detail"] == (
        f"Request body is {2 * MIB + 2} bytes; the limit is 1048576 bytes."
    )
    # No key check happened: a wrong key would have been a 401 and an audit row.
    assert (
        rows(server.data_dir, "SELECT count(*) FROM audit WHERE kind='login_failed'")
        == failed_logins
    )


def test_oversized_headers_are_refused_with_431(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        refused = client.get("/chat/threads", headers={**ALICE, "X-Padding": "p" * 40_000})
        assert refused.status_code == 431
        assert "the limit is 16384" in refused.json()["detail"]
        assert client.get("/chat/threads", headers=ALICE).status_code == 200


def test_an_endless_request_head_is_cut_off_at_the_limit(server: LiveServer) -> None:
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Padding: ")
        with contextlib.suppress(OSError):  # the server hangs up: what we wanted
            while sent < 32 * MIB:
                sock.sendall(b"p" * 65536)
                sent += 65536
    # Socket buffers take a few MB; a parser without a head limit would take all 32.
    assert sent < 8 * MIB, f"the server read {sent} bytes of one request head"


@pytest.mark.parametrize(
    ("body", "status", "sentence"),
    [
        ({"title": "t" * 5_000_000}, 413, "the limit is 1048576 bytes"),
        ({"title": "t" * 201}, 422, "title: String should have at most 200 characters"),
        ({"title": "ok", "description": "d" * 4001}, 422, "at most 4000 characters"),
        ({"title": "ok", "tags": ["t"] * 21}, 422, "tags: List should have at most 20 items"),
        ({"title": "ok", "tags": ["t" * 41]}, 422, "tags.0: String should have at most 40"),
        ({"title": "ok", "tags": ["t" * 900_000]}, 422, "tags.0: String should have at most 40"),
    ],
    ids=["5MB title", "long title", "long description", "21 tags", "long tag", "900KB tag"],
)
def test_oversized_task_fields_are_refused_over_rest(
    server: LiveServer, body: dict[str, Any], status: int, sentence: str
) -> None:
    before = rows(server.data_dir, "SELECT count(*) FROM tasks")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        refused = client.post("/tasks", json=body, headers=ALICE)
    assert refused.status_code == status, refused.text
    assert sentence in refused.json()["detail"]
    assert rows(server.data_dir, "SELECT count(*) FROM tasks") == before


def test_thread_and_run_metadata_are_bounded_and_nothing_is_stored(server: LiveServer) -> None:
    deep: dict[str, Any] = {}
    level = deep
    for _ in range(900):
        level["a"] = {}
        level = level["a"]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        threads = rows(server.data_dir, "SELECT count(*) FROM threads")
        huge = client.post("/threads", json={"metadata": {"k": "v" * 20 * MIB}}, headers=ALICE)
        assert huge.status_code == 413
        big = client.post("/threads", json={"metadata": {"k": "v" * 20_000}}, headers=ALICE)
        assert big.status_code == 422
        assert big.json()["detail"] == (
            "metadata: metadata is 20009 bytes of JSON; the limit is 16384."
        )
        nested = client.post("/threads", json={"metadata": deep}, headers=ALICE)
        assert nested.status_code == 422
        assert "nests 901 levels deep; the limit is 10" in nested.json()["detail"]
        assert rows(server.data_dir, "SELECT count(*) FROM threads") == threads

        made = client.post("/threads", json={"metadata": {"project": "p"}}, headers=ALICE)
        assert made.status_code == 200
        thread_id = made.json()["thread_id"]
        # Patches within the limit each, but not together: the merged result is bounded.
        first = client.patch(
            f"/threads/{thread_id}", json={"metadata": {"a": "x" * 9000}}, headers=ALICE
        )
        assert first.status_code == 200
        second = client.patch(
            f"/threads/{thread_id}", json={"metadata": {"b": "y" * 9000}}, headers=ALICE
        )
        assert second.status_code == 422
        assert "merged metadata is" in second.json()["detail"]
        stored = rows(server.data_dir, "SELECT metadata FROM threads WHERE thread_id=?", thread_id)
        assert '"b"' not in stored[0][0] and '"a"' in stored[0][0]

        run = client.post(
            f"/threads/{thread_id}/runs",
            json={
                "assistant_id": "agent",
                "input": {"messages": [{"role": "user", "content": "list my tasks"}]},
                "metadata": deep,
            },
            headers=ALICE,
        )
        assert run.status_code == 422
        assert "nests 901 levels deep" in run.json()["detail"]
        listed = client.get(f"/threads/{thread_id}/runs", headers=ALICE)
        assert listed.status_code == 200 and listed.json() == []


def test_a_model_cannot_store_an_oversized_task(tmp_path: Path) -> None:
    # 100 KB per field, under a raised model output limit: the field limits are what is
    # tested here; a reply over the output limit is tests/security/test_model_output_limits.py.
    big = 100_000
    orders: dict[str, tuple[str, dict[str, Any]]] = {
        "add the giant tags task": ("create_task", {"title": "giant", "tags": ["x" * big]}),
        "add the giant title task": ("create_task", {"title": "g" * big}),
        "add the giant notes task": ("create_task", {"title": "g", "description": "d" * big}),
        "search with many words": ("list_tasks", {"text": " ".join(["word"] * 20_000)}),
    }
    with ObedientOpenAIServer() as model:
        # Whole arguments in few stream chunks: the oversized fields, not the streaming of
        # millions of tiny chunks, are what is under test here.
        model.chunk_size = 1_000_000
        for message, call in orders.items():
            model.teach(message, [call])
        env = {
            "TASKAGENT_API_KEYS": KEYS,
            "OPENAI_BASE_URL": model.base_url,
            "OPENAI_MODEL": "obedient",
            "TASKAGENT_MAX_MODEL_OUTPUT_CHARS": "1000000",
        }
        server = LiveServer(tmp_path / "data", env=env)
        try:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                for message in orders:
                    answer = client.post("/chat", json={"message": message}, headers=ALICE)
                    assert answer.status_code == 200, answer.text
                    assert model.obeyed.get(message) == 1
                    [call] = answer.json()["tool_calls"]
                    assert call["result"]["ok"] is False
        finally:
            log = server.stop()
    assert rows(tmp_path / "data", "SELECT count(*) FROM tasks") == [(0,)]
    assert "Traceback" not in log


def test_concurrent_patches_cannot_grow_metadata_past_the_limit(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        made = client.post("/threads", json={"metadata": {}}, headers=ALICE)
        thread_id = made.json()["thread_id"]

    def patch(key: str) -> int:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            body = {"metadata": {key: "z" * 3000}}
            return client.patch(f"/threads/{thread_id}", json=body, headers=ALICE).status_code

    # Each patch fits alone; five of them fit together (16 KiB), twenty do not.
    statuses: list[int] = []
    workers = [
        threading.Thread(target=lambda k=f"k{i}": statuses.append(patch(k))) for i in range(20)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stored = rows(server.data_dir, "SELECT metadata FROM threads WHERE thread_id=?", thread_id)
    assert len(stored[0][0].encode()) <= 16_384
    assert sorted(set(statuses)) == [200, 422]
    assert statuses.count(200) == stored[0][0].count('"k')
