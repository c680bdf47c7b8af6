"""Run one turn of the agent and SIGKILL this very process at a chosen point.

Driven by `test_crash_recovery.py`, one subprocess per step:

    python tests/integration/crash_harness.py --data-dir D --message M --crash-at POINT
    python tests/integration/crash_harness.py --data-dir D --thread T --resume
    python tests/integration/crash_harness.py --data-dir D --thread T --message M

Faults are injected here, in the harness process, by wrapping product functions; the product
code is not touched. Each output line is flushed at once, because SIGKILL drops unflushed
buffers:

    THREAD <thread_id>              the thread the turn runs on (new threads get generated ids)
    EVENT <kind> <json data>        every event `AgentRunner.stream_turn` yields
    CRASH <point>                   printed just before the process kills itself
    ACK <thread_id> <json answer>   the turn completed and its answer was acknowledged
    PENDING <json next nodes>       (--resume) what the cut-off run still had to do
    HISTORY <json messages>         the thread's whole conversation after the turn
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from langchain_core.messages import AIMessage, AnyMessage, ToolMessage  # noqa: E402

from graph.context import Context  # noqa: E402
from graph.settings import Settings  # noqa: E402
from server.runs.engine import RunManager  # noqa: E402
from tools.audit import AuditRecord
from tools.store import Mutation, TaskStore  # noqa: E402

POINTS = ("before_tool_commit", "after_tool_commit", "mid_answer", "after_ack")
ANSWER_TOKEN_TO_DIE_ON = 2


def say(*parts: str) -> None:
    """Print one protocol line and flush it before anything else can happen."""
    print(*parts, flush=True)


def die(point: str) -> None:
    """Announce the crash point and SIGKILL this process: no cleanup, no flush, no finally."""
    say("CRASH", point)
    os.kill(os.getpid(), signal.SIGKILL)


def inject_tool_faults(point: str) -> None:
    """Wrap `TaskStore.apply_once` to die just before the mutation runs, or just after commit."""
    original = TaskStore.apply_once

    async def apply_once(
        self: TaskStore,
        key: str,
        owner: str,
        tool: str,
        arguments: dict[str, Any],
        mutation: Mutation,
        audit: AuditRecord | None = None,
        *,
        call_id: str = "",
        thread_id: str = "",
    ) -> dict[str, Any]:
        if point == "before_tool_commit":

            async def mutate_then_never(conn: Any) -> dict[str, Any]:
                # Inside apply_once's open transaction, before any row is written.
                die(point)
                raise AssertionError("unreachable")

            return await original(
                self,
                key,
                owner,
                tool,
                arguments,
                mutate_then_never,
                audit,
                call_id=call_id,
                thread_id=thread_id,
            )
        result = await original(
            self,
            key,
            owner,
            tool,
            arguments,
            mutation,
            audit,
            call_id=call_id,
            thread_id=thread_id,
        )
        if point == "after_tool_commit":
            # The task and its stored result are committed; tool_execute's checkpoint is not.
            die(point)
        return result

    TaskStore.apply_once = apply_once  # type: ignore[method-assign]


def describe(message: AnyMessage) -> dict[str, Any]:
    """The parts of a message the test asserts on."""
    described: dict[str, Any] = {"type": message.type, "content": message.content}
    if isinstance(message, AIMessage):
        described["tool_calls"] = [
            {"id": call["id"], "name": call["name"], "args": call["args"]}
            for call in message.tool_calls
        ]
    if isinstance(message, ToolMessage):
        described["tool_call_id"] = message.tool_call_id
    return described


async def run(args: argparse.Namespace) -> None:
    """Open the runner on the data dir, run (or resume) one turn, crash where asked."""
    if args.crash_at in ("before_tool_commit", "after_tool_commit"):
        inject_tool_faults(args.crash_at)
    settings = Settings(_env_file=None, data_dir=Path(args.data_dir))
    # Opened without claiming yet: what the cut-off run left pending is read first.
    runs = await RunManager.open(settings, start=False)
    runner = runs.runner
    tiers = [tier.name for tier in runner.services.tiers]
    if tiers != ["offline"]:
        raise SystemExit(f"expected only the offline engine, got tiers {tiers}")
    context = Context()
    if args.resume:
        state = await runner.graph.aget_state({"configurable": {"thread_id": args.thread}})
        say("PENDING", json.dumps(list(state.next)))

    thread_id = args.thread
    answer_tokens = 0
    tool_results = 0
    result: dict[str, Any] | None = None
    await runs.start()
    live = await runs.active_runs(args.thread) if args.resume else []
    if live:
        # The cut-off run is this process's now (its owner is gone): follow it to its end.
        turn = _follow(runs, live[0], await runs.store.last_seq(live[0]))
    else:
        turn = runs.turn(context=context, message=args.message, thread_id=args.thread)
    async for kind, data in turn:
        say("EVENT", kind, json.dumps(data, default=str))
        if kind == "metadata":
            thread_id = data["thread_id"]
            say("THREAD", thread_id)
        elif kind == "tool_result":
            tool_results += 1
        elif kind == "token" and tool_results:
            # A token after the tool result belongs to the final answer.
            answer_tokens += 1
            if args.crash_at == "mid_answer" and answer_tokens == ANSWER_TOKEN_TO_DIE_ON:
                die("mid_answer")
        elif kind == "done":
            result = data
    assert result is not None and thread_id is not None
    say("ACK", thread_id, json.dumps(result["message"]))
    if args.crash_at == "after_ack":
        die("after_ack")
    history = await runner.history(thread_id)
    say("HISTORY", json.dumps([describe(message) for message in history], default=str))
    await runs.close()


async def _follow(runs: RunManager, run_id: str, after: int) -> AsyncIterator[tuple[str, Any]]:
    async for event in runs.events(run_id, after):
        yield event.event, json.loads(event.data)


def main() -> None:
    """Parse the arguments and run one turn."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="TASKAGENT_DATA_DIR to open")
    parser.add_argument("--thread", help="thread to continue; omit to start a new one")
    parser.add_argument("--message", help="the user's message for this turn")
    parser.add_argument("--crash-at", choices=POINTS, help="SIGKILL this process at that point")
    parser.add_argument(
        "--resume", action="store_true", help="finish the thread's cut-off run (no new message)"
    )
    args = parser.parse_args()
    if args.resume and (args.thread is None or args.message is not None):
        parser.error("--resume needs --thread and no --message")
    if not args.resume and args.message is None:
        parser.error("give --message (or --resume)")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
