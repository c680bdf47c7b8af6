"""Bounded checkpoint history and rollback, through the saver's contract (never its tables)."""

from __future__ import annotations

from langgraph.checkpoint.base import BaseCheckpointSaver


async def prune_before(
    saver: BaseCheckpointSaver[str], thread_id: str, floor_checkpoint_id: str
) -> None:
    """Drop the thread's checkpoints that precede its reset point `floor_checkpoint_id`.

    The floor is the checkpoint from which the router overwrote the message window: no later
    state needs anything older. The saver's DeltaChannel-aware `keep_latest` prune keeps the
    latest checkpoint and every ancestor back to that Overwrite (or a newer snapshot), so
    the floor only says that there is now something to prune.
    """
    await saver.aprune([thread_id], strategy="keep_latest")


async def delete_run_checkpoints(
    saver: BaseCheckpointSaver[str], thread_id: str, run_id: str
) -> None:
    """Delete the checkpoints (and writes) a run created: a rollback to before the run.

    Run ids are unique, so the saver finds the run's checkpoints in `thread_id` by id alone.
    """
    await saver.adelete_for_runs([run_id])
