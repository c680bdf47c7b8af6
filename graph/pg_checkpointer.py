"""Checkpoints in PostgreSQL (`DATABASE_URL`): LangGraph's saver on the replica's pool.

`langgraph-checkpoint-postgres`'s async saver takes one asyncio lock per instance around
every call, even when it is given a pool, so a replica's turns would write their steps one
at a time; with a pool each call has a connection of its own and the lock protects nothing.
This subclass drops it, completes the saver contract the stock one leaves out
(`adelete_for_runs` for `multitask_strategy="rollback"`, `acopy_thread`, `keep_latest`
pruning of threads with a `DeltaChannel`), and creates its
tables under an advisory lock, so replicas starting together migrate once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from langchain_core.runnables import RunnableConfig
from langgraph.channels.binop import _get_overwrite
from langgraph.checkpoint.postgres import _ainternal
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg import AsyncCursor
from psycopg.rows import DictRow, dict_row

from tools.database import release_pool
from tools.postgres import setup_lock

SETUP_LOCK = "taskagent:checkpoints:setup"


class PgSaver(AsyncPostgresSaver):
    """The stock PostgreSQL saver, lock-free on a pool, with rollback and copy."""

    url: str = ""

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        async with _ainternal.get_connection(self.conn) as conn:
            if pipeline:
                async with (
                    conn.pipeline(),
                    conn.cursor(binary=True, row_factory=dict_row) as cur,
                ):
                    yield cur
            else:
                async with conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur

    async def setup(self) -> None:
        """Create or upgrade the checkpoint tables, one replica at a time."""
        async with setup_lock(self.conn, SETUP_LOCK):  # type: ignore[arg-type]
            await super().setup()

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints the given runs created, with their writes (rollback)."""
        runs = [str(run_id) for run_id in run_ids]
        if not runs:
            return
        async with self._cursor() as cur, cur.connection.transaction():
            await cur.execute(
                "DELETE FROM checkpoint_writes AS w USING checkpoints AS c"
                " WHERE w.thread_id = c.thread_id AND w.checkpoint_ns = c.checkpoint_ns"
                " AND w.checkpoint_id = c.checkpoint_id AND c.metadata->>'run_id' = ANY(%s)",
                (runs,),
            )
            await cur.execute(
                "DELETE FROM checkpoints WHERE metadata->>'run_id' = ANY(%s)", (runs,)
            )

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, blob and write of one thread, ids and parents kept.

        Raises ValueError, copying nothing, when the target thread already has checkpoints.
        """
        source, target = str(source_thread_id), str(target_thread_id)
        async with self._cursor() as cur, cur.connection.transaction():
            # Two copies into one new thread take turns; the second finds the first's rows.
            await cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"copy:{target}",))
            await cur.execute("SELECT 1 FROM checkpoints WHERE thread_id = %s LIMIT 1", (target,))
            if await cur.fetchone():
                raise ValueError(f"thread {target} already has checkpoints; copy to a new thread")
            await cur.execute(
                "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id,"
                " parent_checkpoint_id, type, checkpoint, metadata)"
                " SELECT %s, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint,"
                # Metadata names its thread only when a caller put it there: it follows the copy.
                " CASE WHEN metadata->>'thread_id' IS NULL THEN metadata"
                " ELSE jsonb_set(metadata, '{thread_id}', to_jsonb(%s::text)) END"
                " FROM checkpoints WHERE thread_id = %s",
                (target, target, source),
            )
            await cur.execute(
                "INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type,"
                " blob) SELECT %s, checkpoint_ns, channel, version, type, blob"
                " FROM checkpoint_blobs WHERE thread_id = %s",
                (target, source),
            )
            await cur.execute(
                "INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id,"
                " idx, channel, type, blob, task_path) SELECT %s, checkpoint_ns, checkpoint_id,"
                " task_id, idx, channel, type, blob, task_path"
                " FROM checkpoint_writes WHERE thread_id = %s",
                (target, source),
            )

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune the threads' checkpoint history, as `SqliteSaver.aprune` does.

        `"delete"` removes every checkpoint. `"keep_latest"` keeps, per namespace, the latest
        checkpoint with its writes and every ancestor its `DeltaChannel`s are rebuilt from
        (back to a snapshot in the values or an `Overwrite` among the writes), and the blobs
        those checkpoints point at; the stock saver refuses threads with a `DeltaChannel`.

        Raises ValueError for any other strategy.
        """
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r}: 'keep_latest' or 'delete'")
        for thread_id in map(str, thread_ids):
            if strategy == "delete":
                await self.adelete_thread(thread_id)
                continue
            async with self._cursor() as cur:
                await cur.execute(
                    "SELECT DISTINCT checkpoint_ns FROM checkpoints WHERE thread_id = %s",
                    (thread_id,),
                )
                namespaces = [str(row["checkpoint_ns"]) for row in await cur.fetchall()]
            for namespace in namespaces:
                kept = sorted(await self._needed_chain(thread_id, namespace))
                async with self._cursor() as cur, cur.connection.transaction():
                    for table in ("checkpoint_writes", "checkpoints"):
                        await cur.execute(
                            f"DELETE FROM {table} WHERE thread_id = %s AND checkpoint_ns = %s"
                            " AND NOT (checkpoint_id = ANY(%s))",
                            (thread_id, namespace, kept),
                        )
                    # A blob is a channel's value at one version; one no kept checkpoint
                    # names is unreachable now.
                    await cur.execute(
                        "DELETE FROM checkpoint_blobs AS b WHERE thread_id = %s"
                        " AND checkpoint_ns = %s AND NOT EXISTS (SELECT 1 FROM checkpoints AS c"
                        " WHERE c.thread_id = b.thread_id AND c.checkpoint_ns = b.checkpoint_ns"
                        " AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version)",
                        (thread_id, namespace),
                    )

    async def _needed_chain(self, thread_id: str, namespace: str) -> set[str]:
        """Return the latest checkpoint's id and those of the ancestors its state needs."""
        config: RunnableConfig = {
            "configurable": {"thread_id": thread_id, "checkpoint_ns": namespace}
        }
        found = await self.aget_tuple(config)
        if found is None:
            return set()
        # Per delta channel, the steps since its last snapshot: a channel listed there is
        # rebuilt from ancestors unless the checkpoint itself holds its value.
        counters = found.metadata.get("counters_since_delta_snapshot") or {}
        pending = {str(name) for name in counters} - set(found.checkpoint["channel_values"])
        chain = {str(found.checkpoint["id"])}
        parent = found.parent_config
        while pending and parent is not None:
            found = await self.aget_tuple(parent)
            if found is None or str(found.checkpoint["id"]) in chain:
                break
            chain.add(str(found.checkpoint["id"]))
            pending -= set(found.checkpoint["channel_values"])
            pending -= {
                str(channel)
                for _, channel, value in found.pending_writes or ()
                if channel in pending and _get_overwrite(value)[0]
            }
            parent = found.parent_config
        return chain

    async def aclose(self) -> None:
        """Let go of the replica's pool (closed with the last store using it)."""
        await release_pool(self.url)
