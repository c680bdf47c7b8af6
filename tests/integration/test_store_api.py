"""The store through the stock langgraph-sdk: items, search, namespaces, per-user spaces.

Items live in LangGraph's AsyncSqliteStore (store.sqlite); every user sees only their own
namespaces, over HTTP and through `runtime.store` in a graph run on their thread.
"""

from __future__ import annotations

import json
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client

from graph.settings import Settings
from server.runs.runner import AgentRunner
from tests.integration.conftest import LiveServer, db_rows, fresh_database, on_postgres, serve

pytestmark = pytest.mark.integration

# One server for the HTTP tests: each test acts as its own user, so each has its own space.
KEYS = {
    "TASKAGENT_API_KEYS": "key-a:alice.smith:write,key-b:bob:write,key-c:carol:write,"
    "key-d:dave:read"
}

MEMO_GRAPH = """
from typing_extensions import TypedDict
from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime


class State(TypedDict, total=False):
    note: str
    seen: list[str]


async def remember(state: State, runtime: Runtime) -> State:
    await runtime.store.aput(("notes",), "last", {"text": state["note"]})
    found = await runtime.store.asearch(("notes",))
    return {"seen": sorted(item.value["text"] for item in found)}


def count(state: State, runtime: Runtime) -> State:
    # A synchronous node: LangGraph runs it on a worker thread; the store is the same.
    old = runtime.store.get(("counters",), "runs")
    runtime.store.put(("counters",), "runs", {"n": (old.value["n"] if old else 0) + 1})
    return {}


builder = StateGraph(State)
builder.add_node(remember)
builder.add_node(count)
builder.add_edge(START, "remember")
builder.add_edge("remember", "count")
graph = builder.compile()
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = serve(tmp_path_factory.mktemp("store") / "data", env=KEYS)
    yield live
    live.stop()


def store_rows(server: LiveServer) -> list[tuple[str, str, dict[str, object]]]:
    """Every item in the store, as stored: (prefix, key, value)."""
    sql = "SELECT prefix, key, CAST(value AS TEXT) FROM store ORDER BY prefix, key"
    rows = db_rows(server, "store.sqlite", sql)
    return [(prefix, key, json.loads(value)) for prefix, key, value in rows]


async def test_put_get_search_list_and_delete_items(server):
    client = get_client(url=server.url, api_key="key-c")
    await client.store.put_item(["prefs", "ui"], "theme", {"color": "dark", "size": 3})
    await client.store.put_item(["prefs", "ui"], "font", {"color": "light", "size": 1})
    await client.store.put_item(["prefs"], "lang", {"code": "en"})
    await client.store.put_item(["docs", "q4"], "plan", {"size": 5})

    item = await client.store.get_item(["prefs", "ui"], "theme")
    assert item is not None
    assert item["namespace"] == ["prefs", "ui"] and item["key"] == "theme"
    assert item["value"] == {"color": "dark", "size": 3}
    assert str(item["created_at"]).endswith("+00:00")
    assert str(item["updated_at"]).endswith("+00:00")
    assert await client.store.get_item(["prefs", "ui"], "missing") is None

    await client.store.put_item(["prefs", "ui"], "theme", {"color": "blue", "size": 4})
    replaced = await client.store.get_item(["prefs", "ui"], "theme")
    assert replaced is not None and replaced["value"] == {"color": "blue", "size": 4}

    everything = (await client.store.search_items(["prefs"]))["items"]
    assert sorted(i["key"] for i in everything) == ["font", "lang", "theme"]
    assert all("score" in i for i in everything)
    big = (await client.store.search_items(["prefs"], filter={"size": {"$gt": 2}}))["items"]
    assert [i["key"] for i in big] == ["theme"]
    exact = (await client.store.search_items([], filter={"color": "light"}))["items"]
    assert [(i["namespace"], i["key"]) for i in exact] == [(["prefs", "ui"], "font")]
    page = (await client.store.search_items(["prefs"], limit=2, offset=2))["items"]
    assert len(page) == 1

    names = (await client.store.list_namespaces())["namespaces"]
    assert sorted(names) == [["docs", "q4"], ["prefs"], ["prefs", "ui"]]
    assert sorted((await client.store.list_namespaces(max_depth=1))["namespaces"]) == [
        ["docs"],
        ["prefs"],
    ]
    assert (await client.store.list_namespaces(prefix=["docs"]))["namespaces"] == [["docs", "q4"]]
    assert (await client.store.list_namespaces(suffix=["ui"]))["namespaces"] == [["prefs", "ui"]]
    assert len((await client.store.list_namespaces(limit=1, offset=1))["namespaces"]) == 1

    await client.store.delete_item(["prefs", "ui"], "theme")
    assert await client.store.get_item(["prefs", "ui"], "theme") is None
    await client.store.delete_item(["prefs", "ui"], "theme")  # deleting nothing is no error


async def test_one_user_never_reads_overwrites_deletes_or_finds_anothers_items(server):
    alice = get_client(url=server.url, api_key="key-a")
    bob = get_client(url=server.url, api_key="key-b")
    await alice.store.put_item(["memories"], "diet", {"text": "vegetarian"})

    assert await bob.store.get_item(["memories"], "diet") is None
    assert (await bob.store.search_items([]))["items"] == []
    assert (await bob.store.search_items(["memories"], filter={"text": "vegetarian"}))[
        "items"
    ] == []
    assert (await bob.store.list_namespaces())["namespaces"] == []

    # Bob writing and deleting "the same" item acts on his own space only.
    await bob.store.put_item(["memories"], "diet", {"text": "vegan"})
    await bob.store.delete_item(["memories"], "diet")
    kept = await alice.store.get_item(["memories"], "diet")
    assert kept is not None and kept["value"] == {"text": "vegetarian"}
    # No namespace Bob can name reaches Alice's space, the raw stored label included.
    await bob.store.put_item(["alice%2Esmith", "memories"], "diet", {"text": "spoof"})
    kept = await alice.store.get_item(["memories"], "diet")
    assert kept is not None and kept["value"] == {"text": "vegetarian"}
    assert (await alice.store.list_namespaces())["namespaces"] == [["memories"]]

    # Stored under the owner's id (its period escaped): one row each, nothing shared.
    rows = [(prefix, key) for prefix, key, _ in store_rows(server)]
    assert [row for row in rows if row[0].startswith(("alice", "bob"))] == [
        ("alice%2Esmith.memories", "diet"),
        ("bob.alice%2Esmith.memories", "diet"),
    ]
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (
            await http.get("/store/items", params={"namespace": "memories", "key": "diet"})
        ).status_code == 401


async def test_bad_requests_answer_4xx_with_a_sentence_and_change_nothing(server):
    client = get_client(url=server.url, api_key="key-d")
    await client.store.put_item(["a"], "k", {"v": 1})
    bad = [
        ("GET", "/store/items", {"namespace": "a"}, None, 400),
        ("PUT", "/store/items", None, {"namespace": [], "key": "k", "value": {}}, 400),
        ("PUT", "/store/items", None, {"namespace": ["langgraph"], "key": "k", "value": {}}, 400),
        ("PUT", "/store/items", None, {"namespace": ["a.b"], "key": "k", "value": {}}, 422),
        ("PUT", "/store/items", None, {"namespace": ["a"], "key": "k", "value": [1]}, 422),
        ("PUT", "/store/items", None, {"namespace": ["a"], "key": "", "value": {}}, 422),
        ("PUT", "/store/items", None, {"namespace": ["a"], "key": "n", "value": {"n": 2**64}}, 422),
        (
            "PUT",
            "/store/items",
            None,
            (
                "PUT",
                "/store/items",
                None,
                {"namespace": ["a"], "key": "k", "ttl": 0, "value": {}},
                422,
            ),
            422,
        ),
        ("POST", "/store/items/search", None, {"filter": {"v": {"$bogus": 1}}}, 422),
        ("POST", "/store/items/search", None, {"filter": {"v') OR 1=1 --": 1}}, 422),
        ("POST", "/store/items/search", None, {"limit": 0}, 422),
        ("POST", "/store/namespaces", None, {"max_depth": 0}, 422),
        ("POST", "/store/namespaces", None, {"prefix": [""]}, 422),
        ("DELETE", "/store/items", None, {"namespace": ["a"]}, 422),
    ]
    async with httpx.AsyncClient(base_url=server.url, headers={"X-Api-Key": "key-d"}) as http:
        for method, path, params, body, status in bad:
            response = await http.request(method, path, params=params, json=body)
            assert response.status_code == status, (method, path, body, response.text)
            assert isinstance(response.json()["detail"], str)
    assert [row for row in store_rows(server) if row[0].startswith("dave")] == [
        ("dave.a", "k", {"v": 1})
    ]


def _memo_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "memo.py").write_text(MEMO_GRAPH)
    config = project / "langgraph.json"
    config.write_text(json.dumps({"graphs": {"memo": "./memo.py:graph"}}))
    return config


async def test_graph_nodes_use_their_thread_owners_space_and_items_survive_a_crash(tmp_path):
    data, database = tmp_path / "data", fresh_database()
    settings = Settings(
        _env_file=None,
        data_dir=data,
        graphs_config=_memo_project(tmp_path),
        database_url=database,
    )
    runner = await AgentRunner.open(settings)
    alice_thread, bob_thread = str(uuid.uuid4()), str(uuid.uuid4())
    try:
        memo = runner.graphs.get("memo").graph
        assert runner.graph.store is memo.store is runner.store  # every graph, one store
        await runner.threads.create(alice_thread, "alice.smith")
        await runner.threads.create(bob_thread, "bob")
        seen = await memo.ainvoke({"note": "a1"}, {"configurable": {"thread_id": alice_thread}})
        assert seen["seen"] == ["a1"]
        seen = await memo.ainvoke({"note": "b1"}, {"configurable": {"thread_id": bob_thread}})
        assert seen["seen"] == ["b1"]  # Bob's run does not find Alice's note
        seen = await memo.ainvoke({"note": "a2"}, {"configurable": {"thread_id": alice_thread}})
        assert seen["seen"] == ["a2"]
        with pytest.raises(PermissionError):
            await runner.store.aget(("notes",), "last")  # outside any run: nobody's space
    finally:
        await runner.close()

    first = serve(data, env=KEYS, database_url=database)
    try:
        alice = get_client(url=first.url, api_key="key-a")
        bob = get_client(url=first.url, api_key="key-b")
        note = await alice.store.get_item(["notes"], "last")
        assert note is not None and note["value"] == {"text": "a2"}
        runs = await alice.store.get_item(["counters"], "runs")
        assert runs is not None and runs["value"] == {"n": 2}  # written by the synchronous node
        bobs = await bob.store.get_item(["notes"], "last")
        assert bobs is not None and bobs["value"] == {"text": "b1"}
        await alice.store.put_item(["keep"], "me", {"v": 1}, ttl=60)
    finally:
        first.kill()  # a crash: the item was acknowledged, so it must be there after it

    second = serve(data, env=KEYS, database_url=database)
    try:
        alice = get_client(url=second.url, api_key="key-a")
        kept = await alice.store.get_item(["keep"], "me")
        assert kept is not None and kept["value"] == {"v": 1}
        assert sorted((await alice.store.list_namespaces())["namespaces"]) == [
            ["counters"],
            ["keep"],
            ["notes"],
        ]
    finally:
        second.stop()
    if not on_postgres():
        assert stat.S_IMODE((data / "store.sqlite").stat().st_mode) == 0o600
