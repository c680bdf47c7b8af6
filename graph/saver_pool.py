"""Checkpoint reads and step writes that never queue behind the saver's lock.

The stock async saver runs everything on one aiosqlite connection under one asyncio lock,
and a read holds that lock for five or more hops to the connection's thread (cursor,
statement, fetch, second statement, fetch, close). Under load every step's write then waits
behind other threads' reads: at 200 paced sessions the saver's lock cost a turn about 80 ms
of waiting (docs/BENCHMARKS.md, the wall-clock view). Here a read is one hop to a small pool
of reader threads, each with its own SQLite connection (WAL lets readers run beside the
writer and see every committed write), running the stock synchronous saver's query code.

Even a one-statement write under the lock serialises more than the statement does: the
lock passes to the next writer only after the holder's coroutine has been resumed, and the
next writer must then be scheduled to send its statement, two turns of a busy event loop per
write. A step's writes (`aput`, `aput_writes`) therefore go without the lock to a connection
of their own, where they queue in aiosqlite's FIFO and run back to back; each is one
autocommit statement, committed before it returns, so `durability="sync"` keeps its
guarantee. The saver's own connection and lock stay for everything else (setup, deletes,
pruning transactions), which another connection's write may wait for (SQLite's busy timeout).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.sqlite import SqliteSaver as SyncSqliteSaver

from graph.checkpointer import MAX_WRITES_PER_STATEMENT, WRITE_COLUMNS, SqliteSaver

READER_THREADS = 2
T = TypeVar("T")


class _Readers:
    """Reader threads, each with its own read-only connection and a stock sync saver on it."""

    def __init__(self, path: Path, busy_timeout_ms: int, threads: int) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="checkpoint-reader")
        self.local = threading.local()
        self.conns: list[sqlite3.Connection] = []
        self.guard = threading.Lock()

    def saver(self, owner: SqliteSaver) -> SyncSqliteSaver:
        """Return the calling thread's sync saver, reading with `owner`'s serializer."""
        conn: sqlite3.Connection | None = getattr(self.local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
            conn.execute("PRAGMA query_only=ON")
            with self.guard:
                self.conns.append(conn)
            self.local.conn, self.local.savers = conn, {}
        # LangGraph compiles the graph with a copy of the saver that carries the strict
        # msgpack allowlist: each serializer gets its own reader saver.
        savers: dict[int, SyncSqliteSaver] = self.local.savers
        reader = savers.get(id(owner.serde))
        if reader is None or reader.serde is not owner.serde:
            reader = SyncSqliteSaver(conn, serde=owner.serde)
            reader.is_setup = True  # the writer created the tables
            reader._has_task_path = owner._has_task_path
            savers[id(owner.serde)] = reader
        return reader

    def close(self) -> None:
        """Stop the threads and close their connections."""
        self.executor.shutdown(wait=True)
        with self.guard:
            for conn in self.conns:
                conn.close()
            self.conns.clear()


class PooledSaver(SqliteSaver):
    """`SqliteSaver` whose reads run on reader threads (see the module docstring)."""

    def __init__(
        self,
        conn: aiosqlite.Connection,
        *,
        writer: aiosqlite.Connection,
        path: Path,
        busy_timeout_ms: int,
        readers: int = READER_THREADS,
        **kwargs: Any,
    ) -> None:
        """Write steps through `writer`, the rest through `conn`; read from `readers` threads."""
        super().__init__(conn, **kwargs)
        self.writer = writer
        self._readers = _Readers(path, busy_timeout_ms, readers)
        weakref.finalize(self, self._readers.close)
        # Callers close a saver by closing `saver.conn` (AgentRunner.close, `langgraph dev`'s
        # context): that closes the whole saver, or the writer's thread would keep the
        # process alive.
        close_conn = conn.close
        readers_pool = self._readers

        async def close_all() -> None:
            await asyncio.to_thread(readers_pool.close)
            await writer.close()
            await close_conn()

        conn.close = close_all  # type: ignore[method-assign]

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Save a checkpoint in one statement on the step writer (no lock)."""
        await self.setup()
        thread_id = config["configurable"]["thread_id"]
        checkpoint_ns = config["configurable"]["checkpoint_ns"]
        type_, serialized_checkpoint = self.serde.dumps_typed(checkpoint)
        serialized_metadata = json.dumps(
            get_checkpoint_metadata(config, metadata), ensure_ascii=False
        ).encode("utf-8", "ignore")
        await self.writer.execute_fetchall(
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
        """Store a task's writes in one statement on the step writer (no lock)."""
        if not writes or len(writes) > MAX_WRITES_PER_STATEMENT:
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
        await self.writer.execute_fetchall(
            f"{verb} INTO writes ({WRITE_COLUMNS}) VALUES {rows}", params
        )

    async def setup(self) -> None:
        """Create the tables once; afterwards return at once.

        The stock `setup` takes the lock just to find it has nothing to do, and every read
        and write calls it first: each then queued behind the writes in progress.
        """
        if not self.is_setup:
            await super().setup()

    async def _read(self, fn: Callable[[SyncSqliteSaver], T]) -> T:
        await self.setup()
        loop = asyncio.get_running_loop()
        readers = self._readers
        return await loop.run_in_executor(readers.executor, lambda: fn(readers.saver(self)))

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Return the checkpoint (the latest, or the one named in `config`) in one hop."""
        return await self._read(lambda reader: reader.get_tuple(config))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """List checkpoints newest first, read in one hop."""
        found = await self._read(
            lambda reader: list(reader.list(config, filter=filter, before=before, limit=limit))
        )
        for item in found:
            yield item

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, Any]:
        """Return the writes that rebuild delta channels, read in one hop."""
        return await self._read(
            lambda reader: reader.get_delta_channel_history(config=config, channels=channels)
        )

    async def aclose(self) -> None:
        """Close the reader threads' connections and both writing connections."""
        await self.conn.close()
