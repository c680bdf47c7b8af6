"""Bounded checkpoint history: drop what is older than a thread's last reset point."""

from __future__ import annotations

from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

_ANCESTORS = """
WITH RECURSIVE chain(checkpoint_id, parent_checkpoint_id) AS (
    SELECT checkpoint_id, parent_checkpoint_id FROM checkpoints
    WHERE thread_id = ? AND checkpoint_ns = '' AND checkpoint_id = ?
    UNION
    SELECT c.checkpoint_id, c.parent_checkpoint_id
    FROM chain CROSS JOIN checkpoints c ON c.checkpoint_id = chain.parent_checkpoint_id
    WHERE c.thread_id = ? AND c.checkpoint_ns = ''
)
SELECT checkpoint_id FROM chain WHERE checkpoint_id != ?
"""


async def prune_before(saver: AsyncSqliteSaver, thread_id: str, floor_checkpoint_id: str) -> int:
    """Delete the checkpoints (and their writes) that precede `floor_checkpoint_id`.

    The floor is the checkpoint from which the router overwrote the message window, so no
    later state needs anything older: the DeltaChannel replay starts from that Overwrite.
    Returns the number of checkpoints deleted.
    """
    params = (thread_id, floor_checkpoint_id, thread_id, floor_checkpoint_id)
    return await _delete_selected(saver, thread_id, _ANCESTORS, params)


async def delete_run_checkpoints(saver: AsyncSqliteSaver, thread_id: str, run_id: str) -> int:
    """Delete the checkpoints (and writes) a run created: a rollback to before the run."""
    select = (
        "SELECT checkpoint_id FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ''"
        " AND json_extract(CAST(metadata AS TEXT), '$.run_id') = ?"
    )
    return await _delete_selected(saver, thread_id, select, (thread_id, run_id))


async def _delete_selected(
    saver: AsyncSqliteSaver, thread_id: str, select: str, params: tuple[str, ...]
) -> int:
    async with saver.lock:
        async with saver.conn.execute(select, params) as cur:
            doomed = [row[0] for row in await cur.fetchall()]
        if doomed:
            await _delete(saver, thread_id, doomed)
    return len(doomed)


async def _delete(saver: AsyncSqliteSaver, thread_id: str, checkpoint_ids: list[str]) -> None:
    marks = ",".join("?" * len(checkpoint_ids))
    await saver.conn.execute("BEGIN IMMEDIATE")
    try:
        for table in ("writes", "checkpoints"):
            await saver.conn.execute(
                f"DELETE FROM {table} WHERE thread_id = ? AND checkpoint_ns = ''"
                f" AND checkpoint_id IN ({marks})",
                (thread_id, *checkpoint_ids),
            )
        await saver.conn.execute("COMMIT")
    except BaseException:
        await saver.conn.execute("ROLLBACK")
        raise
