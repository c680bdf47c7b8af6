"""Checkpoint reads on their own threads, so they never queue behind the writer's lock.

The stock async saver runs everything on one aiosqlite connection under one asyncio lock,
and a read holds that lock for five or more hops to the connection's thread (cursor,
statement, fetch, second statement, fetch, close). Under load every step's write then waits
behind other threads' reads: at 200 paced sessions the saver's lock cost a turn about 80 ms
of waiting (docs/BENCHMARKS.md, the wall-clock view). Here a read is one hop to a small pool
of reader threads, each with its own SQLite connection (WAL lets readers run beside the
writer and see every committed write), running the stock synchronous saver's query code.
Writes stay as they were: one statement each on the one writer connection, committed
before `aput` returns, so `durability="sync"` keeps its guarantee.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple
from langgraph.checkpoint.sqlite import SqliteSaver as SyncSqliteSaver

from graph.checkpointer import SqliteSaver

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
        conn: Any,
        *,
        path: Path,
        busy_timeout_ms: int,
        readers: int = READER_THREADS,
        **kwargs: Any,
    ) -> None:
        """Write through `conn`; read `path` from `readers` threads of their own."""
        super().__init__(conn, **kwargs)
        self._readers = _Readers(path, busy_timeout_ms, readers)
        weakref.finalize(self, self._readers.close)

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
        """Close the reader threads' connections and the writer connection."""
        await asyncio.to_thread(self._readers.close)
        await self.conn.close()
