"""The server errors the fuzzer found, each now a 4xx with a sentence that stores nothing.

Through a real server with keys: a `"` in a thread-search metadata key, an offset of 2**63,
a 20,000-word text filter, metadata nested 900 deep, and a 24-digit `Last-Event-ID`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import pytest

from tests.integration.conftest import LiveServer

pytestmark = pytest.mark.integration

KEYS = "k-alice-rg-0000:alice:write"
ALICE = {"X-Api-Key": "k-alice-rg-0000"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("regress") / "data", env={"TASKAGENT_API_KEYS": KEYS})
    yield live
    log = live.stop()
    assert "Traceback" not in log, log[log.index("Traceback") :][:3000]


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30, headers=ALICE) as http:
        yield http


def threads_in_db(server: LiveServer) -> int:
    uri = f"file:{server.data_dir / 'tasks.sqlite'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        return int(conn.execute("SELECT count(*) FROM threads").fetchone()[0])


def nested(depth: int) -> dict[str, Any]:
    top: dict[str, Any] = {}
    level = top
    for _ in range(depth - 1):
        level["a"] = {}
        level = level["a"]
    return top


def test_a_quote_in_a_metadata_search_key_is_just_a_key(client: httpx.Client) -> None:
    made = client.post("/threads", json={"metadata": {'team"lead': "ann", "x": 1}})
    assert made.status_code == 200
    for key in ('team"lead', '"', "$.x", "a']"):
        found = client.post("/threads/search", json={"metadata": {key: "ann"}})
        assert found.status_code == 200, found.text
    hits = client.post("/threads/search", json={"metadata": {'team"lead': "ann"}}).json()
    assert [t["thread_id"] for t in hits] == [made.json()["thread_id"]]
    assert client.post("/threads/search", json={"metadata": {'team"lead': "bob"}}).json() == []


@pytest.mark.parametrize("offset", [2**63, 2**64, 10**9 + 1, -1])
def test_out_of_range_offsets_are_422(client: httpx.Client, offset: int) -> None:
    searched = client.post("/threads/search", json={"offset": offset})
    assert searched.status_code == 422
    assert searched.json()["detail"].startswith("offset: Input should be")
    thread = client.post("/threads", json={}).json()["thread_id"]
    listed = client.get(f"/threads/{thread}/runs", params={"offset": offset})
    assert listed.status_code == 422
    assert listed.json()["detail"].startswith("query.offset: Input should be")


def test_out_of_range_limits_are_422(client: httpx.Client) -> None:
    for limit in (0, 1001, 2**63):
        searched = client.post("/threads/search", json={"limit": limit})
        assert searched.status_code == 422, searched.text


def test_a_text_filter_of_thousands_of_words_is_refused(client: httpx.Client) -> None:
    assert client.post("/tasks", json={"title": "water the fern"}).status_code == 201
    twenty = " ".join(["fern"] * 20)
    assert client.get("/tasks", params={"text": twenty}).json()["count"] == 1
    for words in (21, 2000):
        many = client.get("/tasks", params={"text": " ".join(["w"] * words)})
        assert many.status_code == 422
        assert many.json()["detail"].startswith("query.text: ")
    # 20,000 words do not fit in a URL under the header limit: 431 at the door.
    flood = client.get("/tasks", params={"text": " ".join(["w"] * 20_000)})
    assert flood.status_code == 431
    assert "the limit is 16384" in flood.json()["detail"]


def test_deeply_nested_metadata_is_refused_and_search_keeps_working(
    server: LiveServer, client: httpx.Client
) -> None:
    before = threads_in_db(server)
    refused = client.post("/threads", json={"metadata": nested(900)})
    assert refused.status_code == 422
    assert refused.json()["detail"] == "metadata: metadata nests 900 levels deep; the limit is 10."
    assert threads_in_db(server) == before
    ok = client.post("/threads", json={"metadata": nested(10)})
    assert ok.status_code == 200
    thread_id = ok.json()["thread_id"]
    patched = client.patch(f"/threads/{thread_id}", json={"metadata": {"b": nested(11)}})
    assert patched.status_code == 422
    search = client.post("/threads/search", json={"metadata": {"a": nested(9)}})
    assert search.status_code == 200
    assert [t["thread_id"] for t in search.json()] == [thread_id]
    assert client.post("/threads/search", json={}).status_code == 200


def test_a_24_digit_last_event_id_is_422_on_both_rejoin_routes(client: httpx.Client) -> None:
    chat = client.post("/chat", json={"message": "add a task to call the plumber"}).json()
    huge = {"Last-Event-ID": "9" * 24}
    rejoined = client.get(f"/chat/runs/{chat['run_id']}/stream", headers=huge)
    assert rejoined.status_code == 422
    assert "Last-Event-ID" in rejoined.json()["detail"]

    thread = client.post("/threads", json={}).json()["thread_id"]
    waited = client.post(
        f"/threads/{thread}/runs/wait",
        json={"input": {"messages": [{"role": "user", "content": "list my tasks"}]}},
    )
    run_id = waited.headers["content-location"].rsplit("/", 1)[-1]
    joined = client.get(f"/threads/{thread}/runs/{run_id}/stream", headers=huge)
    assert joined.status_code == 422
    assert "Last-Event-ID" in joined.json()["detail"]
    # The largest id a client can send still works: nothing comes after it.
    last = client.get(
        f"/threads/{thread}/runs/{run_id}/stream", headers={"Last-Event-ID": "9" * 18}
    )
    assert last.status_code == 200 and "event:" not in last.text
    replay = client.get(f"/chat/runs/{chat['run_id']}/stream", headers={"Last-Event-ID": "1"})
    assert replay.status_code == 200 and "event: done" in replay.text
