"""Run the real server with kill points armed by a file: `python -m faults.killpoint serve ...`.

The process imports everything, then waits for a line "go" on stdin before it serves (see
`ServerProcess.start`).

Like `tests/integration/crash_harness.py`, faults are injected by wrapping product functions
in this process; the product code is not touched and the wrappers do nothing until armed. The
driver arms one by writing `<point> <n>` to the file named by `FAULTS_KILL_ARM`; the n-th time
the point is reached afterwards, the file is removed and the process SIGKILLs itself.

Points:

* `before_tool_commit` — inside a tool call's transaction, before any row is written;
* `after_run_insert`   — a new run is stored (with its idempotency key), not yet started;
* `after_run_start`    — the run is recorded running, its input not yet in a checkpoint;
* `after_tool_commit`  — the task and its stored result committed, the step's checkpoint not;
* `after_checkpoint`   — right after the n-th checkpoint write;
* `after_resume_write` — writes carrying an approval saved (the 1st: the approval alone; the
  2nd: the approved step's writes), no checkpoint after them;
* `after_event_log`    — right after the n-th batch of run events is on disk;
* `before_run_end`     — the turn finished, its final status not yet recorded.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

POINTS = (
    "after_run_insert",
    "after_run_start",
    "before_tool_commit",
    "after_tool_commit",
    "after_checkpoint",
    "after_resume_write",
    "after_event_log",
    "before_run_end",
)

_reached: dict[str, int] = {}


def _armed(point: str) -> bool:
    """Count one arrival at `point`; True when the armed count is reached (disarms)."""
    arm = os.environ.get("FAULTS_KILL_ARM")
    if not arm:
        return False
    path = Path(arm)
    try:
        wanted, count = path.read_text().split()
    except (FileNotFoundError, ValueError):
        _reached.clear()
        return False
    if wanted != point:
        return False
    _reached[point] = _reached.get(point, 0) + 1
    if _reached[point] < int(count):
        return False
    path.unlink(missing_ok=True)
    return True


def die() -> None:
    """SIGKILL this process: no cleanup, no flush, no finally."""
    os.kill(os.getpid(), signal.SIGKILL)


def install() -> None:
    """Wrap the product functions at each kill point."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    from server.runs.store import FINISHED, RunStore
    from server.runs.threads import ThreadIndex
    from tools.store import TaskStore

    apply_once = TaskStore.apply_once

    async def apply_once_with_points(self: TaskStore, *args: Any, **kwargs: Any) -> Any:
        if _armed("before_tool_commit"):
            mutation = args[4] if len(args) > 4 else kwargs["mutation"]

            async def die_inside(conn: Any) -> Any:
                die()
                return await mutation(conn)

            if len(args) > 4:
                args = (*args[:4], die_inside, *args[5:])
            else:
                kwargs["mutation"] = die_inside
        result = await apply_once(self, *args, **kwargs)
        if _armed("after_tool_commit"):
            die()
        return result

    # The product may use a subclass of the stock saver that overrides these: wrap every class
    # that defines them, each around its own method.
    savers: list[type[Any]] = [AsyncSqliteSaver]
    for saver in savers:
        # Subclasses of subclasses too (graph/saver_pool.py), each once.
        savers += [sub for sub in saver.__subclasses__() if sub not in savers]
        _wrap_saver(saver)

    append = RunStore.append

    async def append_with_point(self: RunStore, *args: Any, **kwargs: Any) -> None:
        await append(self, *args, **kwargs)
        if _armed("after_event_log"):
            die()

    admit = RunStore.admit

    async def admit_with_point(self: RunStore, *args: Any, **kwargs: Any) -> Any:
        admission = await admit(self, *args, **kwargs)
        if _armed("after_run_insert"):
            die()
        return admission

    set_status = RunStore.set_status

    async def set_status_with_point(
        self: RunStore, run_id: str, status: Any, **kwargs: Any
    ) -> bool:
        if status in FINISHED and _armed("before_run_end"):
            die()
        return await set_status(self, run_id, status, **kwargs)

    start_run = ThreadIndex.start_run

    async def start_run_with_point(self: ThreadIndex, *args: Any, **kwargs: Any) -> None:
        await start_run(self, *args, **kwargs)
        if _armed("after_run_start"):
            die()

    ThreadIndex.start_run = start_run_with_point  # type: ignore[method-assign]
    TaskStore.apply_once = apply_once_with_points  # type: ignore[method-assign]
    RunStore.append = append_with_point  # type: ignore[method-assign]
    RunStore.admit = admit_with_point  # type: ignore[method-assign]
    RunStore.set_status = set_status_with_point  # type: ignore[method-assign]


def _wrap_saver(saver: type[Any]) -> None:
    """Wrap `aput` and `aput_writes` where `saver` itself defines them."""
    if "aput" in vars(saver):
        aput = saver.aput

        async def aput_with_point(self: Any, *args: Any, **kwargs: Any) -> Any:
            result = await aput(self, *args, **kwargs)
            if _armed("after_checkpoint"):
                die()
            return result

        saver.aput = aput_with_point
    if "aput_writes" in vars(saver):
        aput_writes = saver.aput_writes

        async def aput_writes_with_point(
            self: Any, config: Any, writes: Any, *args: Any, **kwargs: Any
        ) -> None:
            await aput_writes(self, config, writes, *args, **kwargs)
            resume = any(channel == "__resume__" for channel, _ in writes)
            if resume and _armed("after_resume_write"):
                die()

        saver.aput_writes = aput_writes_with_point


def main() -> None:
    """Install the kill points, wait for "go" on stdin, then run the server's command line.

    Everything is imported before the wait; nothing under the data dir is opened until after.
    """
    import graph.saver_pool  # noqa: F401  (open_saver imports it late; its savers get wrapped)
    import server.app  # noqa: F401  (the heavy imports, done while waiting)
    from server.cli.main import app

    install()

    if sys.stdin.readline().strip() != "go":
        return
    app(sys.argv[1:], prog_name="taskagent")


if __name__ == "__main__":
    main()
