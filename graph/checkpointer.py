"""The durable checkpoint saver: SQLite on the data dir, blobs compressed.

The server and the CLI open it through `AgentRunner`; `langgraph dev` (Studio) gets it from
`langgraph.json`'s `checkpointer.path`, so threads debugged in Studio survive its restarts too.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from graph.settings import Settings, get_settings
from tools.codec import compressed_serde
from tools.sqlite import open_sqlite

# SQLite allows 32,766 bound values per statement; a write binds 9.
MAX_WRITES_PER_STATEMENT = 1000
WRITE_COLUMNS = (
    "thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, value"
)


class SqliteSaver(AsyncSqliteSaver):
    """The stock async SQLite saver, writing each checkpoint and each set of writes in one step.

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


async def open_saver(settings: Settings) -> AsyncSqliteSaver:
    """Open the checkpoint database under the data dir and create its tables if needed."""
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


@asynccontextmanager
async def sqlite_checkpointer() -> AsyncIterator[AsyncSqliteSaver]:
    """Yield the saver for `langgraph dev` and close it when the dev server stops."""
    saver = await open_saver(get_settings())
    try:
        yield saver
    finally:
        await saver.conn.close()
