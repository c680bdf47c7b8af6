"""The durable checkpoint saver: SQLite on the data dir, blobs compressed.

The server and the CLI open it through `AgentRunner`; `langgraph dev` (Studio) gets it from
`langgraph.json`'s `checkpointer.path`, so threads debugged in Studio survive its restarts too.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.channels.binop import _get_overwrite
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from graph.pg_checkpointer import PgSaver
from graph.settings import Settings, get_settings
from tools.codec import compressed_serde
from tools.database import acquire_pool
from tools.sqlite import fetch_all, fetch_one, open_sqlite

# SQLite allows 32,766 bound values per statement; a write binds 9.
MAX_WRITES_PER_STATEMENT = 1000
WRITE_COLUMNS = (
    "thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, value"
)


class SqliteSaver(AsyncSqliteSaver):
    """The stock async SQLite saver, writing each checkpoint and each set of writes in one step.

    It also keeps the whole saver contract (`adelete_for_runs`, `acopy_thread`, `aprune`),
    so rollback, copy and prune work under `langgraph dev` and no code outside this module
    touches LangGraph's tables.

    The stock saver spends three or four hops to aiosqlite's thread per write (cursor,
    statement, a commit that is a no-op on our autocommit connection, cursor close); each hop
    wakes two threads. Here a write is one statement in one hop, committed when it returns,
    so it is exactly as durable, and a set of writes lands atomically.
    """

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Save a checkpoint (as the stock saver does, in one statement)."""
        await self.setup()
        thread_id = config["configurable"]["thread_id"]
        checkpoint_ns = config["configurable"]["checkpoint_ns"]
        type_, serialized_checkpoint = self.serde.dumps_typed(checkpoint)
        serialized_metadata = json.dumps(
            get_checkpoint_metadata(config, metadata), ensure_ascii=False
        ).encode("utf-8", "ignore")
        async with self.lock:
            await self.conn.execute_fetchall(
                "INSERT OR REPLACE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id,"
                " parent_checkpoint_id, type, checkpoint, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    str(thread_id),
                    checkpoint_ns,
                    checkpoint["id"],
                    config["configurable"].get("checkpoint_id"),
                    type_,
                    serialized_checkpoint,
                    serialized_metadata,
                ),
            )
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes (as the stock saver does, in one multi-row statement)."""
        if not writes:
            return
        if len(writes) > MAX_WRITES_PER_STATEMENT:
            await super().aput_writes(config, writes, task_id, task_path)
            return
        verb = (
            "INSERT OR REPLACE"
            if all(w[0] in WRITES_IDX_MAP for w in writes)
            else "INSERT OR IGNORE"
        )
        await self.setup()
        configurable = config["configurable"]
        params: list[Any] = []
        for idx, (channel, value) in enumerate(writes):
            params += [
                str(configurable["thread_id"]),
                str(configurable["checkpoint_ns"]),
                str(configurable["checkpoint_id"]),
                task_id,
                task_path,
                WRITES_IDX_MAP.get(channel, idx),
                channel,
                *self.serde.dumps_typed(value),
            ]
        rows = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(writes))
        async with self.lock:
            await self.conn.execute_fetchall(
                f"{verb} INTO writes ({WRITE_COLUMNS}) VALUES {rows}", params
            )

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints the given runs created, with their writes, in every thread.

        Used by `multitask_strategy="rollback"`: the thread is left as it was before the runs.
        """
        if not run_ids:
            return
        await self.setup()
        doomed = (
            "SELECT thread_id, checkpoint_ns, checkpoint_id FROM checkpoints"
            " WHERE json_extract(CAST(metadata AS TEXT), '$.run_id')"
            " IN (SELECT value FROM json_each(?))"
        )
        runs = json.dumps([str(run_id) for run_id in run_ids])
        async with self.lock, self._transaction():
            await self.conn.execute(
                f"DELETE FROM writes WHERE (thread_id, checkpoint_ns, checkpoint_id) IN ({doomed})",
                (runs,),
            )
            await self.conn.execute(
                "DELETE FROM checkpoints WHERE json_extract(CAST(metadata AS TEXT), '$.run_id')"
                " IN (SELECT value FROM json_each(?))",
                (runs,),
            )

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and write of one thread, ids and parents kept, to a new thread.

        Raises ValueError, copying nothing, when the target thread already has checkpoints.
        """
        await self.setup()
        source, target = str(source_thread_id), str(target_thread_id)
        async with self.lock, self._transaction():
            if await fetch_one(
                self.conn, "SELECT 1 FROM checkpoints WHERE thread_id = ? LIMIT 1", (target,)
            ):
                raise ValueError(f"thread {target} already has checkpoints; copy to a new thread")
            await self.conn.execute(
                "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id,"
                " parent_checkpoint_id, type, checkpoint, metadata)"
                " SELECT ?, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint,"
                # Metadata names its thread only when a caller put it there: it follows the copy.
                " CASE WHEN json_extract(CAST(metadata AS TEXT), '$.thread_id') IS NULL"
                " THEN metadata ELSE CAST(json_set(CAST(metadata AS TEXT), '$.thread_id', ?)"
                " AS BLOB) END FROM checkpoints WHERE thread_id = ?",
                (target, target, source),
            )
            await self.conn.execute(
                f"INSERT INTO writes ({WRITE_COLUMNS}) SELECT ?, checkpoint_ns, checkpoint_id,"
                " task_id, task_path, idx, channel, type, value FROM writes WHERE thread_id = ?",
                (target, source),
            )

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune the threads' checkpoint history.

        `"delete"` removes every checkpoint. `"keep_latest"` keeps, per namespace, the latest
        checkpoint with its writes and, because a `DeltaChannel` rebuilds its value from
        ancestors, every ancestor back to the nearest one that resets each such channel: a
        `_DeltaSnapshot` in its values, or an `Overwrite` among its writes. Nothing the latest
        state needs is dropped; everything older, and any branch off the latest chain, is.

        Raises ValueError for any other strategy.
        """
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r}: 'keep_latest' or 'delete'")
        await self.setup()
        async with self.lock, self._transaction():
            for thread_id in map(str, thread_ids):
                if strategy == "delete":
                    for table in ("writes", "checkpoints"):
                        await self.conn.execute(
                            f"DELETE FROM {table} WHERE thread_id = ?", (thread_id,)
                        )
                    continue
                namespaces = await fetch_all(
                    self.conn,
                    "SELECT DISTINCT checkpoint_ns FROM checkpoints WHERE thread_id = ?",
                    (thread_id,),
                )
                for (namespace,) in namespaces:
                    kept = json.dumps(sorted(await self._needed_chain(thread_id, namespace)))
                    for table in ("writes", "checkpoints"):
                        await self.conn.execute(
                            f"DELETE FROM {table} WHERE thread_id = ? AND checkpoint_ns = ?"
                            " AND checkpoint_id NOT IN (SELECT value FROM json_each(?))",
                            (thread_id, namespace, kept),
                        )

    async def _needed_chain(self, thread_id: str, namespace: str) -> set[str]:
        """Return the latest checkpoint's id and those of the ancestors its state needs."""
        row = await fetch_one(
            self.conn,
            "SELECT checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata"
            " FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ?"
            " ORDER BY checkpoint_id DESC LIMIT 1",
            (thread_id, namespace),
        )
        if row is None:
            return set()
        latest, parent, type_, blob, metadata = row
        # LangGraph counts, per delta channel, the steps since its last snapshot: a channel
        # listed there is rebuilt from ancestors unless the checkpoint itself holds its value.
        counters = json.loads(metadata or b"{}").get("counters_since_delta_snapshot") or {}
        values = self.serde.loads_typed((type_, blob))["channel_values"]
        pending = {str(name) for name in counters} - set(values)
        chain = {str(latest)}
        while pending and parent is not None and parent not in chain:
            row = await fetch_one(
                self.conn,
                "SELECT parent_checkpoint_id, type, checkpoint FROM checkpoints"
                " WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?",
                (thread_id, namespace, parent),
            )
            if row is None:
                break
            chain.add(str(parent))
            pending -= set(self.serde.loads_typed((row[1], row[2]))["channel_values"])
            pending -= await self._overwritten(thread_id, namespace, str(parent), pending)
            parent = row[0]
        return chain

    async def _overwritten(
        self, thread_id: str, namespace: str, checkpoint_id: str, channels: set[str]
    ) -> set[str]:
        """Return which of `channels` a write on `checkpoint_id` replaced with an Overwrite."""
        if not channels:
            return set()
        rows = await fetch_all(
            self.conn,
            "SELECT channel, type, value FROM writes WHERE thread_id = ? AND checkpoint_ns = ?"
            " AND checkpoint_id = ? AND channel IN (SELECT value FROM json_each(?))",
            (thread_id, namespace, checkpoint_id, json.dumps(sorted(channels))),
        )
        # The same test DeltaChannel's replay applies to decide where a value starts afresh.
        return {
            str(channel)
            for channel, type_, value in rows
            if _get_overwrite(self.serde.loads_typed((type_, value)))[0]
        }

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        # Callers hold `self.lock`: no other statement of this saver runs in between.
        await self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            await self.conn.execute("ROLLBACK")
            raise
        await self.conn.execute("COMMIT")


async def open_saver(settings: Settings) -> BaseCheckpointSaver[str]:
    """Open the checkpoint database (data dir or PostgreSQL), creating its tables if needed."""
    if settings.postgres_url:
        pool = await acquire_pool(settings.postgres_url)
        saver = PgSaver(pool, serde=compressed_serde())
        saver.url = settings.postgres_url
        try:
            await saver.setup()
        except BaseException:
            await saver.aclose()
            raise
        return saver
    return await _open_sqlite_saver(settings)


async def close_saver(saver: BaseCheckpointSaver[str]) -> None:
    """Close what `open_saver` opened."""
    close = getattr(saver, "aclose", None)
    if close is not None:
        await close()
    else:
        await saver.conn.close()  # type: ignore[attr-defined]


async def _open_sqlite_saver(settings: Settings) -> AsyncSqliteSaver:
    conn = await open_sqlite(
        settings.checkpoint_db,
        busy_timeout_ms=settings.busy_timeout_ms,
        synchronous=settings.sqlite_synchronous,
    )
    # Reads on reader threads (graph/saver_pool.py); imported here, as it builds on this module.
    from graph.saver_pool import PooledSaver

    writer = await open_sqlite(
        settings.checkpoint_db,
        busy_timeout_ms=settings.busy_timeout_ms,
        synchronous=settings.sqlite_synchronous,
    )
    saver = PooledSaver(
        conn,
        writer=writer,
        serde=compressed_serde(),
        path=settings.checkpoint_db,
        busy_timeout_ms=settings.busy_timeout_ms,
    )
    await saver.setup()
    return saver


def declared_msgpack_allowlist() -> list[tuple[str, ...]]:
    """Return langgraph.json's `checkpointer.serde.allowed_msgpack_modules`, if declared.

    `langgraph dev` hands the `checkpointer` block over as LANGGRAPH_CHECKPOINTER; langgraph-api
    0.16.7 applies only the JSON half of `serde` itself, so the saver it gets from us applies
    the msgpack half, or Studio's reads of a thread would drop our state classes.
    """
    block = json.loads(os.environ.get("LANGGRAPH_CHECKPOINTER") or "{}")
    modules = (block.get("serde") or {}).get("allowed_msgpack_modules") or []
    return [tuple(entry) for entry in modules] if isinstance(modules, list) else []


@asynccontextmanager
async def sqlite_checkpointer() -> AsyncIterator[BaseCheckpointSaver[str]]:
    """Yield the saver for `langgraph dev` and close it when the dev server stops."""
    opened = await _open_sqlite_saver(get_settings())
    saver = opened.with_allowlist(declared_msgpack_allowlist())
    try:
        yield saver
    finally:
        await opened.conn.close()
