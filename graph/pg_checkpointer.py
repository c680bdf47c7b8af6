"""Checkpoints in PostgreSQL (`DATABASE_URL`): LangGraph's saver on the replica's pool.

`langgraph-checkpoint-postgres`'s async saver takes one asyncio lock per instance around
every call, even when it is given a pool, so a replica's turns would write their steps one
at a time; with a pool each call has a connection of its own and the lock protects nothing.
This subclass drops it, completes the saver contract the stock one leaves out
(`adelete_for_runs` for `multitask_strategy="rollback"`, `acopy_thread`), and creates its
tables under an advisory lock, so replicas starting together migrate once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

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

    async def aclose(self) -> None:
        """Let go of the replica's pool (closed with the last store using it)."""
        await release_pool(self.url)
