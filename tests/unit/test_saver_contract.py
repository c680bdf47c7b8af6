"""Our checkpoint savers against the BaseCheckpointSaver contract: SQLite file and PostgreSQL.

The first half checks what the stock saver's own tests (and LangGraph's conformance suite)
check: put / get / list with filters, `before` and `limit`, writes, delete_thread. The second
half checks the methods `langgraph dev` reports as degraded when a saver lacks them —
delete_for_runs (rollback), copy_thread (copy) and prune — including on a real graph whose
messages live in a DeltaChannel, where a careless prune would silently empty the state.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Annotated, Any, cast

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.channels import DeltaChannel
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.serde.types import ERROR
from langgraph.graph import START, StateGraph
from langgraph.types import Overwrite
from typing_extensions import TypedDict

from graph.checkpointer import SqliteSaver, close_saver, open_saver
from graph.pg_checkpointer import PgSaver
from tests.conftest import make_settings

Saver = BaseCheckpointSaver[str]


@pytest.fixture(params=["sqlite", "postgres"])
async def saver(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Saver]:
    """Our SQLite saver, and our PostgreSQL one (`DATABASE_URL`) on a new database."""
    overrides = {}
    if request.param == "postgres":
        overrides["DATABASE_URL"] = request.getfixturevalue("pg_url")
    opened = await open_saver(make_settings(tmp_path, **overrides))
    assert isinstance(opened, SqliteSaver | PgSaver)
    yield opened
    await close_saver(opened)


async def writes_on(saver: Saver, channel: str) -> int:
    """How many stored writes go to `channel`, read from the saver's own table."""
    if isinstance(saver, PgSaver):
        async with saver._cursor() as cur:
            await cur.execute(
                "SELECT COUNT(*) AS n FROM checkpoint_writes WHERE channel = %s", (channel,)
            )
            row = await cur.fetchone()
            return int(row["n"]) if row else 0
    assert isinstance(saver, SqliteSaver)
    async with saver.conn.execute(
        "SELECT COUNT(*) FROM writes WHERE channel = ?", (channel,)
    ) as cur:
        found = await cur.fetchone()
        return int(found[0]) if found else 0


def config(thread_id: str, ns: str = "", checkpoint_id: str | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ns}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def checkpoint(**values: Any) -> Checkpoint:
    return Checkpoint(
        v=1,
        id=str(uuid6(clock_seq=-1)),
        ts="2026-12-07T00:00:00+00:00",
        channel_values=values,
        channel_versions={name: 1 for name in values},
        versions_seen={},
        updated_channels=None,
    )


async def put_chain(
    saver: Saver, thread_id: str, n: int, *, ns: str = "", run_id: str | None = None, **extra: Any
) -> list[RunnableConfig]:
    """Put `n` checkpoints, each the child of the one before; return their stored configs."""
    stored: list[RunnableConfig] = []
    for step in range(n):
        parent = stored[-1]["configurable"]["checkpoint_id"] if stored else None
        metadata: dict[str, Any] = {"source": "loop", "step": step, "parents": {}, **extra}
        if run_id is not None:
            metadata["run_id"] = run_id
        cp = checkpoint(step=step)
        cfg = config(thread_id, ns, parent)
        stored.append(
            await saver.aput(cfg, cp, cast(CheckpointMetadata, metadata), cp["channel_versions"])
        )
    return stored


async def listed(saver: Saver, cfg: RunnableConfig | None, **kwargs: Any) -> list[CheckpointTuple]:
    return [tup async for tup in saver.alist(cfg, **kwargs)]


def ids(tuples: Sequence[CheckpointTuple]) -> list[str]:
    return [str(tup.config["configurable"]["checkpoint_id"]) for tup in tuples]


def cid(stored: RunnableConfig) -> str:
    return str(stored["configurable"]["checkpoint_id"])


# --- the stock behaviours ------------------------------------------------------------------


async def test_put_then_get_returns_the_checkpoint_its_metadata_and_its_parent(saver):
    first, second = await put_chain(saver, "t1", 2, source_note="kept")
    latest = await saver.aget_tuple(config("t1"))
    assert latest is not None
    assert cid(latest.config) == cid(second)
    assert latest.checkpoint["channel_values"] == {"step": 1}
    assert latest.metadata["step"] == 1 and latest.metadata["source_note"] == "kept"
    assert latest.parent_config is not None and cid(latest.parent_config) == cid(first)
    by_id = await saver.aget_tuple(config("t1", checkpoint_id=cid(first)))
    assert by_id is not None and by_id.checkpoint["channel_values"] == {"step": 0}
    assert by_id.parent_config is None
    assert await saver.aget_tuple(config("t1", checkpoint_id=str(uuid6()))) is None
    assert await saver.aget_tuple(config("nobody")) is None


async def test_list_is_newest_first_and_honours_filter_before_and_limit(saver):
    chain = await put_chain(saver, "t1", 4)
    await put_chain(saver, "t2", 2, run_id="other-run")
    await put_chain(saver, "t1", 1, ns="child:1")
    everything = await listed(saver, config("t1"))
    assert ids(everything) == [cid(c) for c in reversed(chain)]  # root namespace only
    assert len(await listed(saver, {"configurable": {"thread_id": "t1"}})) == 5  # every ns
    assert ids(await listed(saver, config("t1"), limit=2)) == [cid(chain[3]), cid(chain[2])]
    before = await listed(saver, config("t1"), before=config("t1", checkpoint_id=cid(chain[2])))
    assert ids(before) == [cid(chain[1]), cid(chain[0])]
    by_step = await listed(saver, config("t1"), filter={"step": 2})
    assert ids(by_step) == [cid(chain[2])]
    assert len(await listed(saver, None, filter={"run_id": "other-run"})) == 2
    assert await listed(saver, config("t1"), filter={"step": 99}) == []


async def test_writes_are_pending_on_their_checkpoint_in_order_and_stored_once(saver):
    [stored] = await put_chain(saver, "t1", 1)
    task = str(uuid.uuid4())
    await saver.aput_writes(stored, [("a", 1), ("b", 2)], task)
    await saver.aput_writes(stored, [("a", "again")], task)  # the same task's write: kept once
    await saver.aput_writes(stored, [(ERROR, "first failure")], task)
    await saver.aput_writes(stored, [(ERROR, "second failure")], task)  # special: replaced
    tup = await saver.aget_tuple(config("t1"))
    assert tup is not None
    assert sorted((w[1], w[2]) for w in tup.pending_writes or []) == [
        ("__error__", "second failure"),
        ("a", 1),
        ("b", 2),
    ]


async def test_more_writes_than_one_statement_binds_are_all_stored(saver):
    [stored] = await put_chain(saver, "t1", 1)
    await saver.aput_writes(stored, [(f"ch{i}", i) for i in range(1500)], str(uuid.uuid4()))
    tup = await saver.aget_tuple(config("t1"))
    assert tup is not None and len(tup.pending_writes or []) == 1500


async def test_delete_thread_removes_that_thread_only(saver):
    [stored] = await put_chain(saver, "t1", 1)
    await saver.aput_writes(stored, [("a", 1)], "task")
    await put_chain(saver, "t2", 2)
    await saver.adelete_thread("t1")
    assert await listed(saver, {"configurable": {"thread_id": "t1"}}) == []
    assert len(await listed(saver, config("t2"))) == 2


# --- delete_for_runs (rollback) --------------------------------------------------------------


async def test_delete_for_runs_removes_exactly_those_runs_checkpoints_and_writes(saver):
    kept = await put_chain(saver, "t1", 2, run_id="run-1")
    doomed = await put_chain(saver, "t1", 2, run_id="run-2")
    await put_chain(saver, "t1", 1, ns="child:1", run_id="run-2")
    await put_chain(saver, "t2", 1, run_id="run-3")
    await saver.aput_writes(doomed[0], [("a", 1)], "task")
    await saver.aput_writes(kept[1], [("b", 2)], "task")

    await saver.adelete_for_runs(["run-2"])

    remaining = await listed(saver, {"configurable": {"thread_id": "t1"}})
    assert ids(remaining) == [cid(kept[1]), cid(kept[0])]
    assert await saver.aget_tuple(doomed[0]) is None
    kept_tuple = await saver.aget_tuple(kept[1])
    assert kept_tuple is not None and [w[1] for w in kept_tuple.pending_writes or []] == ["b"]
    assert len(await listed(saver, config("t2"))) == 1
    assert await writes_on(saver, "a") == 0  # no orphaned write survives its checkpoint
    await saver.adelete_for_runs([])  # nothing to do
    await saver.adelete_for_runs(["no-such-run"])
    assert len(await listed(saver, {"configurable": {"thread_id": "t1"}})) == 2


# --- copy_thread -----------------------------------------------------------------------------


async def test_copy_thread_gives_an_identical_history_under_the_new_id(saver):
    chain = await put_chain(saver, "src", 3, run_id="run-1")
    await put_chain(saver, "src", 1, ns="child:1")
    await saver.aput_writes(chain[-1], [("a", {"x": 1})], "task-1", "path-1")

    await saver.acopy_thread("src", "dst")

    source = await listed(saver, {"configurable": {"thread_id": "src"}})
    copy = await listed(saver, {"configurable": {"thread_id": "dst"}})
    assert ids(copy) == ids(source)
    for original, copied in zip(source, copy, strict=True):
        assert copied.config["configurable"]["thread_id"] == "dst"
        assert copied.checkpoint == original.checkpoint
        assert copied.metadata == original.metadata
        assert copied.pending_writes == original.pending_writes
        parent, copied_parent = original.parent_config, copied.parent_config
        assert (parent and cid(parent)) == (copied_parent and cid(copied_parent))
    assert len(await listed(saver, config("dst", "child:1"))) == 1
    assert len(source) == 4  # the source is untouched


async def test_copy_thread_refuses_a_target_with_history_and_copies_nothing_from_nowhere(saver):
    await put_chain(saver, "src", 2)
    await put_chain(saver, "dst", 1)
    with pytest.raises(ValueError, match="already has checkpoints"):
        await saver.acopy_thread("src", "dst")
    assert len(await listed(saver, config("dst"))) == 1
    await saver.acopy_thread("nothing-here", "fresh")
    assert await listed(saver, config("fresh")) == []


# --- prune -----------------------------------------------------------------------------------


async def test_prune_keep_latest_keeps_the_latest_per_namespace_with_its_writes(saver):
    root = await put_chain(saver, "t1", 4)
    child = await put_chain(saver, "t1", 2, ns="child:1")
    await saver.aput_writes(root[-1], [("a", "pending")], "task")
    await saver.aput_writes(root[0], [("b", "old")], "task")
    other = await put_chain(saver, "t2", 3)

    await saver.aprune(["t1"], strategy="keep_latest")

    assert ids(await listed(saver, config("t1"))) == [cid(root[-1])]
    assert ids(await listed(saver, config("t1", "child:1"))) == [cid(child[-1])]
    latest = await saver.aget_tuple(config("t1"))
    assert latest is not None and [(w[1], w[2]) for w in latest.pending_writes or []] == [
        ("a", "pending")
    ]
    assert ids(await listed(saver, config("t2"))) == [cid(c) for c in reversed(other)]
    assert await writes_on(saver, "b") == 0


async def test_prune_delete_removes_the_threads_and_other_strategies_are_refused(saver):
    await put_chain(saver, "t1", 3)
    await put_chain(saver, "t2", 1)
    await saver.aprune(["t1"], strategy="delete")
    assert await listed(saver, {"configurable": {"thread_id": "t1"}}) == []
    assert len(await listed(saver, config("t2"))) == 1
    with pytest.raises(ValueError, match="unknown prune strategy"):
        await saver.aprune(["t2"], strategy="keep_some")
    await saver.aprune([], strategy="keep_latest")
    await saver.aprune(["no-such-thread"], strategy="keep_latest")
    assert len(await listed(saver, config("t2"))) == 1


# --- on a real graph whose list lives in a DeltaChannel -------------------------------------


def extend(current: list[str], batches: Sequence[list[str]]) -> list[str]:
    """Append each batch in order (deterministic and the same however batches are grouped)."""
    return [*current, *(item for batch in batches for item in batch)]


def delta_graph(saver: Saver, snapshot_frequency: int) -> Any:
    # The functional form: the channel's settings are evaluated here, not as a string later.
    State = TypedDict(  # noqa: UP013
        "State",
        {
            "items": Annotated[
                list[str], DeltaChannel(extend, snapshot_frequency=snapshot_frequency)
            ],
            "reset": bool,
        },
        total=False,
    )

    def echo(state: Any) -> dict[str, Any]:
        said = f"echo {len(state['items'])}"
        if state.get("reset"):
            return {"items": Overwrite([said]), "reset": False}
        return {"items": [said]}

    builder = StateGraph(State)
    builder.add_node("echo", echo)
    builder.add_edge(START, "echo")
    return builder.compile(checkpointer=saver)


async def turns(graph: Any, thread_id: str, n: int, *, reset_at: int = -1) -> None:
    for i in range(n):
        await graph.ainvoke(
            {"items": [f"said {i}"], "reset": i == reset_at},
            {"configurable": {"thread_id": thread_id}, "metadata": {"run_id": str(uuid.uuid4())}},
        )


async def state_of(graph: Any, thread_id: str) -> list[str]:
    snapshot = await graph.aget_state({"configurable": {"thread_id": thread_id}})
    return list(snapshot.values["items"])


async def test_prune_keeps_every_ancestor_a_delta_channel_replays_from(saver):
    graph = delta_graph(saver, snapshot_frequency=1000)  # never snapshots: replay from writes
    await turns(graph, "t1", 8, reset_at=5)
    before = await state_of(graph, "t1")
    assert before[0] == "echo 11"  # the Overwrite in turn 5 restarted the list
    total = len(await listed(saver, config("t1")))

    await saver.aprune(["t1"], strategy="keep_latest")

    assert await state_of(graph, "t1") == before
    kept = await listed(saver, config("t1"))
    assert 1 < len(kept) < total  # the chain back to the Overwrite, nothing older
    assert kept[-1].metadata["step"] > 0  # the thread's first checkpoints are gone
    await turns(graph, "t1", 1)
    assert await state_of(graph, "t1") == [*before, "said 0", f"echo {len(before) + 1}"]


async def test_prune_stops_at_the_nearest_delta_snapshot(saver):
    graph = delta_graph(saver, snapshot_frequency=3)
    await turns(graph, "t1", 7)
    before = await state_of(graph, "t1")
    assert len(before) == 14
    total = len(await listed(saver, config("t1")))

    await saver.aprune(["t1"], strategy="keep_latest")

    assert await state_of(graph, "t1") == before
    kept = await listed(saver, config("t1"))
    assert len(kept) < total
    assert "items" in kept[-1].checkpoint["channel_values"]  # the oldest kept is a snapshot


async def test_rollback_and_copy_on_a_real_thread(saver):
    graph = delta_graph(saver, snapshot_frequency=1000)
    await turns(graph, "t1", 2)
    after_two = await state_of(graph, "t1")
    run_id = str(uuid.uuid4())  # as the run engine tags each run's checkpoints
    await graph.ainvoke(
        {"items": ["rolled back"]},
        {"configurable": {"thread_id": "t1"}, "metadata": {"run_id": run_id}},
    )
    assert (await listed(saver, config("t1")))[0].metadata["run_id"] == run_id

    await saver.adelete_for_runs([run_id])
    assert await state_of(graph, "t1") == after_two

    await saver.acopy_thread("t1", "t2")
    assert await state_of(graph, "t2") == after_two
    await turns(graph, "t2", 1)
    assert await state_of(graph, "t1") == after_two  # the copy lives on its own
    assert await state_of(graph, "t2") == [*after_two, "said 0", "echo 5"]
