"""Assistants through the stock langgraph-sdk: every route, two users, and a restart.

The server serves the task agent plus `nested` (tests/integration/assistant_graphs), a graph
with a subgraph, so system assistants, drawings, schemas and subgraphs are checked for a graph
of another shape too. Shapes were compared with `langgraph dev` (langgraph-api 0.16.7) serving
the same two graphs; the schemas and drawings are identical.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph.graph import START, StateGraph
from langgraph_sdk import get_client
from langgraph_sdk.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    UnprocessableEntityError,
)
from typing_extensions import TypedDict

from server.runs.assistants import AssistantChange, AssistantStore
from server.runs.graphs import GraphRegistry, ServedGraph, system_assistant_id
from server.runs.runner import TurnError
from server.runs.store import RunRecord, RunStore
from tests.integration.conftest import LiveServer, db_rows, fresh_database, serve, serve_again

pytestmark = pytest.mark.integration

GRAPHS = Path(__file__).parent / "assistant_graphs" / "langgraph.json"
KEYS = "k-alice-0000:alice:write,k-bob-00000:bob:write,k-carol-000:carol:write"
ALICE, BOB, CAROL = "k-alice-0000", "k-bob-00000", "k-carol-000"
NESTED = system_assistant_id("nested")
AGENT = system_assistant_id("agent")


def served_env() -> dict[str, str]:
    return {"TASKAGENT_API_KEYS": KEYS, "TASKAGENT_GRAPHS_CONFIG": str(GRAPHS)}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the module: tests tag what they create, so they do not see each other's."""
    live = serve(tmp_path_factory.mktemp("assistants") / "data", env=served_env())
    yield live
    live.stop()


def client(server: LiveServer, key: str = ALICE) -> Any:
    return get_client(url=server.url, api_key=key)


def tag() -> dict[str, str]:
    """Metadata unique to one test, to search for what it created."""
    return {"test": uuid.uuid4().hex}


def version_rows(server: LiveServer, assistant_id: str) -> list[int]:
    sql = "SELECT version FROM assistant_versions WHERE assistant_id = ? ORDER BY version"
    return [row[0] for row in db_rows(server, "runs.sqlite", sql, [assistant_id])]


async def test_one_system_assistant_per_served_graph_for_every_user(server):
    for key in (ALICE, BOB):
        found = await client(server, key).assistants.search(metadata={"created_by": "system"})
        by_graph = {a["graph_id"]: a for a in found}
        assert set(by_graph) == {"agent", "nested"}
        assert by_graph["nested"]["assistant_id"] == NESTED
        assert by_graph["agent"]["assistant_id"] == AGENT
        assert by_graph["nested"]["name"] == "nested" and by_graph["nested"]["version"] == 1
        assert by_graph["nested"]["description"] == "Greets, then shouts in a subgraph."
    sdk = client(server)
    # A graph id stands for its system assistant wherever an assistant id is taken.
    assert (await sdk.assistants.get("nested"))["assistant_id"] == NESTED
    assert (await sdk.assistants.get(NESTED))["metadata"] == {"created_by": "system"}
    versions = await sdk.assistants.get_versions("nested")
    assert [v["version"] for v in versions] == [1]
    assert (await sdk.assistants.set_latest("nested", 1))["version"] == 1
    with pytest.raises(NotFoundError):
        await sdk.assistants.set_latest("nested", 2)
    # Shared by every user, so no user changes or deletes it.
    with pytest.raises(PermissionDeniedError):
        await sdk.assistants.update("nested", metadata={"mine": True})
    with pytest.raises(PermissionDeniedError):
        await sdk.assistants.delete(AGENT)
    assert (await sdk.assistants.get("nested"))["metadata"] == {"created_by": "system"}


async def test_graph_schemas_and_subgraphs_of_each_graph(server):
    sdk = client(server)
    drawing = await sdk.assistants.get_graph("nested")
    assert {n["id"] for n in drawing["nodes"]} == {"__start__", "greet", "loud", "__end__"}
    inside = await sdk.assistants.get_graph(NESTED, xray=True)
    assert "loud:shout" in {n["id"] for n in inside["nodes"]}
    agent = await sdk.assistants.get_graph("agent")
    assert {"guard_input", "model_call", "tool_execute"} <= {n["id"] for n in agent["nodes"]}

    schemas = await sdk.assistants.get_schemas("nested")
    assert schemas["graph_id"] == "nested"
    assert set(schemas["state_schema"]["properties"]) == {"name", "greeting"}
    assert schemas["context_schema"]["properties"]["salutation"]["default"] == "Hello"
    assert schemas["config_schema"]["properties"].keys() == {"salutation"}
    assert set(schemas["input_schema"]["properties"]) == {"name", "greeting"}

    subgraphs = await sdk.assistants.get_subgraphs("nested")
    assert list(subgraphs) == ["loud"]
    assert set(subgraphs["loud"]["state_schema"]["properties"]) == {"greeting"}
    assert list(await sdk.assistants.get_subgraphs("nested", namespace="loud")) == ["loud"]
    assert await sdk.assistants.get_subgraphs("nested", namespace="nowhere") == {}
    assert list(await sdk.assistants.get_subgraphs("nested", recurse=True)) == ["loud"]
    assert await sdk.assistants.get_subgraphs("agent") == {}
    async with httpx.AsyncClient(base_url=server.url, headers={"X-Api-Key": ALICE}) as http:
        bad = await http.get("/assistants/nested/graph", params={"xray": "sideways"})
        assert bad.status_code == 422 and isinstance(bad.json()["detail"], str)
        assert (await http.get("/assistants/nested/graph", params={"xray": "0"})).status_code == 422


async def test_create_patch_versions_and_set_latest(server):
    sdk = client(server)
    mine = tag()
    created = await sdk.assistants.create(
        "nested",
        context={"salutation": "Hi"},
        metadata={**mine, "team": "ops"},
        name="Greeter",
        description="First cut",
    )
    aid = created["assistant_id"]
    assert uuid.UUID(aid) and created["version"] == 1 and created["graph_id"] == "nested"
    # context and config.configurable are kept one and the same, as langgraph-api keeps them.
    assert created["config"] == {"configurable": {"salutation": "Hi"}}
    assert created["context"] == {"salutation": "Hi"}
    assert await sdk.assistants.get(aid) == created

    second = await sdk.assistants.update(aid, metadata={"stage": "beta"}, name="Greeter 2")
    assert second["version"] == 2 and second["name"] == "Greeter 2"
    assert second["metadata"] == {**mine, "team": "ops", "stage": "beta"}  # merged
    assert second["context"] == {"salutation": "Hi"} and second["description"] == "First cut"
    assert second["created_at"] == created["created_at"]
    assert second["updated_at"] > created["updated_at"]
    third = await sdk.assistants.update(aid, context={"salutation": "Yo"})
    assert third["version"] == 3 and third["config"] == {"configurable": {"salutation": "Yo"}}

    versions = await sdk.assistants.get_versions(aid)
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert [v["name"] for v in versions] == ["Greeter 2", "Greeter 2", "Greeter"]
    assert versions[2]["context"] == {"salutation": "Hi"}
    assert [v["version"] for v in await sdk.assistants.get_versions(aid, limit=1, offset=1)] == [2]
    staged = await sdk.assistants.get_versions(aid, metadata={"stage": "beta"})
    assert [v["version"] for v in staged] == [3, 2]

    back = await sdk.assistants.set_latest(aid, 1)
    assert back["version"] == 1 and back["name"] == "Greeter"
    assert back["context"] == {"salutation": "Hi"} and back["metadata"] == {**mine, "team": "ops"}
    assert (await sdk.assistants.get(aid))["version"] == 1
    # A patch after going back still gets a new number: versions are never rewritten.
    fourth = await sdk.assistants.update(aid, description="Second cut")
    assert fourth["version"] == 4 and fourth["name"] == "Greeter"
    assert version_rows(server, aid) == [1, 2, 3, 4]
    with pytest.raises(NotFoundError):
        await sdk.assistants.set_latest(aid, 9)


async def test_create_if_exists_and_refusals(server):
    sdk = client(server)
    chosen = str(uuid.uuid4())
    first = await sdk.assistants.create("agent", assistant_id=chosen, name="Mine")
    assert first["assistant_id"] == chosen and first["name"] == "Mine"
    with pytest.raises(ConflictError):
        await sdk.assistants.create("agent", assistant_id=chosen, name="Other")
    same = await sdk.assistants.create("agent", assistant_id=chosen, if_exists="do_nothing")
    assert same == first
    with pytest.raises(NotFoundError):
        await sdk.assistants.create("no-such-graph")
    with pytest.raises(UnprocessableEntityError):
        await sdk.assistants.create("agent", assistant_id="not-a-uuid")
    with pytest.raises(BadRequestError):
        await sdk.assistants.create(
            "nested", config={"configurable": {"salutation": "A"}}, context={"salutation": "B"}
        )
    with pytest.raises(UnprocessableEntityError):
        await sdk.assistants.create("agent", metadata={"blob": "x" * 70_000})
    with pytest.raises(NotFoundError):
        await sdk.assistants.update(chosen, graph_id="no-such-graph")
    with pytest.raises(UnprocessableEntityError):
        await sdk.assistants.update(chosen, metadata={"blob": "x" * 70_000})
    # Each half fits the metadata limit (16 KiB); merged they do not.
    fits = await sdk.assistants.update(chosen, metadata={"one": "x" * 10_000})
    with pytest.raises(UnprocessableEntityError):
        await sdk.assistants.update(chosen, metadata={"two": "x" * 10_000})
    with pytest.raises(UnprocessableEntityError):
        await sdk.assistants.get("not-a-uuid")
    with pytest.raises(NotFoundError):
        await sdk.assistants.get(str(uuid.uuid4()))
    async with httpx.AsyncClient(base_url=server.url, headers={"X-Api-Key": ALICE}) as http:
        for body in ({"sort_by": "colour"}, {"sort_order": "up"}, {"select": ["secret"]}):
            refused = await http.post("/assistants/search", json=body)
            assert refused.status_code == 422 and isinstance(refused.json()["detail"], str)
        unknown = await http.post("/assistants/count", json={"graph_id": "no-such-graph"})
        assert unknown.status_code == 404
    # Nothing refused was written.
    assert await sdk.assistants.get(chosen) == fits
    assert version_rows(server, chosen) == [1, 2]


async def test_search_filters_sorts_pages_and_counts(server):
    sdk = client(server)
    mine = tag()
    for name, graph in (("beta helper", "agent"), ("Alpha Helper", "nested"), ("gamma", "agent")):
        await sdk.assistants.create(graph, name=name, metadata=mine)

    newest_first = await sdk.assistants.search(metadata=mine)
    assert [a["name"] for a in newest_first] == ["gamma", "Alpha Helper", "beta helper"]
    by_name = await sdk.assistants.search(metadata=mine, sort_by="name", sort_order="asc")
    assert [a["name"] for a in by_name] == ["Alpha Helper", "beta helper", "gamma"]
    by_name_desc = await sdk.assistants.search(metadata=mine, sort_by="name", sort_order="desc")
    assert [a["name"] for a in by_name_desc] == ["gamma", "beta helper", "Alpha Helper"]
    helpers = await sdk.assistants.search(metadata=mine, name="HELPER")
    assert {a["name"] for a in helpers} == {"Alpha Helper", "beta helper"}
    agents = await sdk.assistants.search(metadata=mine, graph_id="agent")
    assert {a["name"] for a in agents} == {"beta helper", "gamma"}
    picked = await sdk.assistants.search(metadata=mine, select=["name", "version"], limit=1)
    assert picked == [{"name": "gamma", "version": 1}]

    page = await sdk.assistants.search(
        metadata=mine, limit=2, sort_by="name", sort_order="asc", response_format="object"
    )
    assert [a["name"] for a in page["assistants"]] == ["Alpha Helper", "beta helper"]
    assert page["next"] == "2"
    rest = await sdk.assistants.search(
        metadata=mine, limit=2, offset=2, sort_by="name", sort_order="asc", response_format="object"
    )
    assert [a["name"] for a in rest["assistants"]] == ["gamma"] and rest["next"] is None

    assert await sdk.assistants.count(metadata=mine) == 3
    assert await sdk.assistants.count(metadata=mine, graph_id="agent") == 2
    assert await sdk.assistants.count(metadata=mine, name="helper") == 2


async def test_each_user_sees_and_changes_only_their_own(server):
    alice, bob, carol = client(server, ALICE), client(server, BOB), client(server, CAROL)
    mine = tag()
    theirs = await alice.assistants.create("nested", name="Alice's", metadata=mine)
    aid = theirs["assistant_id"]
    for call in (
        bob.assistants.get(aid),
        bob.assistants.update(aid, name="Bob's now"),
        bob.assistants.delete(aid),
        bob.assistants.get_versions(aid),
        bob.assistants.set_latest(aid, 1),
        bob.assistants.get_graph(aid),
        bob.assistants.get_schemas(aid),
        bob.assistants.get_subgraphs(aid),
    ):
        with pytest.raises(NotFoundError):
            await call
    assert await bob.assistants.search(metadata=mine) == []
    assert await bob.assistants.count(metadata=mine) == 0
    # Bob cannot take the id either, not even with do_nothing.
    with pytest.raises(ConflictError):
        await bob.assistants.create("nested", assistant_id=aid, if_exists="do_nothing")
    # A user who created nothing sees just the system assistants.
    assert {a["assistant_id"] for a in await carol.assistants.search()} == {AGENT, NESTED}
    assert await carol.assistants.count() == 2
    assert await alice.assistants.get(aid) == theirs
    assert [a["assistant_id"] for a in await alice.assistants.search(metadata=mine)] == [aid]


async def test_delete_removes_versions_and_optionally_threads(server):
    alice, bob = client(server, ALICE), client(server, BOB)
    doomed = await alice.assistants.create("nested", name="Doomed")
    aid = doomed["assistant_id"]
    await alice.assistants.update(aid, name="Doomed 2")
    kept = await alice.assistants.create("nested", name="Kept")
    on_it = await alice.threads.create(metadata={"assistant_id": aid})
    elsewhere = await alice.threads.create(metadata={"assistant_id": kept["assistant_id"]})
    bobs = await bob.threads.create(metadata={"assistant_id": aid})

    await alice.assistants.delete(aid, delete_threads=True)
    with pytest.raises(NotFoundError):
        await alice.assistants.get(aid)
    with pytest.raises(NotFoundError):
        await alice.assistants.get_versions(aid)
    with pytest.raises(NotFoundError):
        await alice.assistants.delete(aid)
    assert version_rows(server, aid) == []
    with pytest.raises(NotFoundError):
        await alice.threads.get(on_it["thread_id"])
    assert (await alice.threads.get(elsewhere["thread_id"]))["thread_id"]
    assert (await bob.threads.get(bobs["thread_id"]))["thread_id"]  # not Alice's to delete

    # Without delete_threads the threads stay.
    await alice.assistants.delete(kept["assistant_id"])
    assert (await alice.threads.get(elsewhere["thread_id"]))["thread_id"]


async def test_assistants_survive_a_restart(tmp_path):
    data = tmp_path / "data"
    first = serve(data, env=served_env())
    try:
        sdk = client(first)
        made = await sdk.assistants.create("nested", name="Durable", context={"salutation": "Hey"})
        aid = made["assistant_id"]
        await sdk.assistants.update(aid, name="Durable 2")
        latest = await sdk.assistants.set_latest(aid, 1)
        system = await sdk.assistants.get("nested")
    finally:
        first.stop()

    again = serve_again(first, env=served_env())
    try:
        sdk = client(again)
        assert await sdk.assistants.get(aid) == latest
        assert [v["version"] for v in await sdk.assistants.get_versions(aid)] == [2, 1]
        # The system assistants are registered once, keeping their first created_at.
        found = await sdk.assistants.search(metadata={"created_by": "system"})
        assert sorted(a["graph_id"] for a in found) == ["agent", "nested"]
        assert await sdk.assistants.get("nested") == system
    finally:
        again.stop()
    assert version_rows(again, aid) == [1, 2]


def _registry(*graph_ids: str) -> GraphRegistry:
    class State(TypedDict):
        text: str

    served = []
    for graph_id in graph_ids:
        builder = StateGraph(State)
        builder.add_node("echo", lambda state: state)
        builder.add_edge(START, "echo")
        served.append(ServedGraph(graph_id, builder.compile(name=graph_id)))
    return GraphRegistry(served)


async def open_store(path: Path, database_url: str | None, *graph_ids: str) -> AssistantStore:
    return await AssistantStore.open(
        path,
        _registry(*graph_ids),
        busy_timeout_ms=5000,
        synchronous="NORMAL",
        database_url=database_url,
    )


async def test_resolve_gives_a_run_the_latest_config_and_context(tmp_path):
    store = await open_store(tmp_path / "runs.sqlite", fresh_database(), "agent", "other")
    try:
        made = await store.create(
            "alice", AssistantChange(graph_id="other", context={"tone": "dry"})
        )
        await store.patch(made["assistant_id"], "alice", AssistantChange(context={"tone": "warm"}))
        resolved = await store.resolve(made["assistant_id"], "alice")
        assert (resolved.graph_id, resolved.version) == ("other", 2)
        assert resolved.context == {"tone": "warm"}
        assert resolved.config == {"configurable": {"tone": "warm"}}
        by_graph = await store.resolve("other", "bob")
        assert by_graph.assistant_id == system_assistant_id("other")
        assert (by_graph.version, by_graph.context, by_graph.config) == (1, {}, {})
        with pytest.raises(TurnError) as foreign:
            await store.resolve(made["assistant_id"], "bob")
        assert foreign.value.status == 404
        with pytest.raises(TurnError) as unknown:
            await store.resolve(str(uuid.uuid4()), "alice")
        assert unknown.value.status == 404
        with pytest.raises(TurnError) as malformed:
            await store.resolve("no-such-graph", "alice")
        assert malformed.value.status == 422
    finally:
        await store.close()


async def test_assistants_of_a_graph_no_longer_served_hide_until_it_is_again(tmp_path):
    path, database = tmp_path / "runs.sqlite", fresh_database()
    store = await open_store(path, database, "agent", "other")
    made = await store.create("alice", AssistantChange(graph_id="other", name="Kept"))
    await store.close()

    store = await open_store(path, database, "agent")
    try:
        with pytest.raises(TurnError) as hidden:
            await store.get(made["assistant_id"], "alice")
        assert hidden.value.status == 404
        found, more = await store.search("alice")
        assert [a["graph_id"] for a in found] == ["agent"] and not more
        assert await store.count("alice") == 1
    finally:
        await store.close()

    store = await open_store(path, database, "agent", "other")
    try:
        assert await store.get(made["assistant_id"], "alice") == made
        assert await store.count("alice") == 3
    finally:
        await store.close()


async def test_live_runs_on_an_assistant_are_found_per_owner(tmp_path):
    """What deleting an assistant cancels: its owner's pending and running runs on it, only."""
    store = await RunStore.open(
        tmp_path / "runs.sqlite",
        busy_timeout_ms=5000,
        synchronous="NORMAL",
        database_url=fresh_database(),
    )
    try:
        ids = {}
        for name, owner, assistant in (
            ("mine", "alice", "a-1"),
            ("other assistant", "alice", "a-2"),
            ("bob's", "bob", "a-1"),
        ):
            run = RunRecord(
                run_id=str(uuid.uuid4()),
                thread_id=str(uuid.uuid4()),
                owner=owner,
                assistant_id=assistant,
                kind="agent",
                status="pending",
                multitask_strategy="enqueue",
                payload={},
                metadata={},
            )
            admitted = await store.admit(
                run,
                key=None,
                key_ttl=timedelta(seconds=60),
                max_pending=10,
                lease_owner="test",
                lease_s=30,
            )
            ids[name] = admitted.run.run_id
        assert await store.live_on_assistant("a-1", "alice") == [ids["mine"]]
        await store.set_status(ids["mine"], "success")
        assert await store.live_on_assistant("a-1", "alice") == []
        assert await store.live_on_assistant("a-1", "bob") == [ids["bob's"]]
    finally:
        await store.close()
