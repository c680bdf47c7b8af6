"""`taskagent chat`: streamed answers, one-line tool calls, inline approvals, slash commands."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.text import Text

from server.cli.client import AgentClient, ClientError
from server.cli.options import ApiKey, AsJson, Url, run_client
from server.cli.render import (
    TurnView,
    console,
    errors,
    footer,
    health_lines,
    plain,
    print_history,
    print_json,
    threads_table,
)
from tools.text import printable

HELP_TEXT = (
    "Type a message for the agent, or a command: /new (start a new thread), /threads (list"
    " threads), /history (this thread), /health (model tiers and database), /help, /quit."
)
GREETING = "Type a message, or /new /threads /history /health /help /quit."

CHAT_EXAMPLES = """Examples:

  taskagent chat

  taskagent chat -m "create an urgent task to renew the passport tomorrow"

  taskagent chat --thread 6f1c... -m "what's overdue?"

  taskagent chat --thread 6f1c... --approve --json

  taskagent chat --url http://127.0.0.1:8000 --api-key tak_...
"""


def chat(
    thread: Annotated[
        str | None, typer.Option("--thread", "-t", help="Resume this thread id.")
    ] = None,
    message: Annotated[
        str | None,
        typer.Option("--message", "-m", help="Send one message, print the answer, exit."),
    ] = None,
    approve: Annotated[
        bool | None,
        typer.Option(
            "--approve/--reject",
            help="Answer the approval the --thread waits for, without a prompt.",
            show_default=False,
        ),
    ] = None,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Chat with the agent: the answer streams as markdown, each tool call is one line.

    Deleting a task asks for approval inline (y/N).

    Inside the chat: /new, /threads, /history, /health, /help, /quit.

    With -m and --json the turn is one JSON object (message, thread_id, tool_calls, interrupt…).
    """
    if approve is not None and (thread is None or message is not None):
        raise typer.BadParameter(
            "answers the approval of a --thread, without -m", param_hint="--approve/--reject"
        )
    if as_json and message is None and approve is None:
        raise typer.BadParameter("needs -m (or --approve/--reject)", param_hint="--json")
    run_client(
        url, api_key, lambda client: ChatSession(client, as_json).run(thread, message, approve)
    )


@contextmanager
def interruptible() -> Iterator[None]:
    """Let Ctrl-C stop a blocking prompt at once.

    Under asyncio.run, Ctrl-C only cancels the main task, which notices after the prompt
    returns: the user would have to press Enter as well.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def answer(approved: bool, question: dict[str, Any] | None) -> dict[str, Any]:
    """Return the resume value answering `question`, naming it so it answers nothing else."""
    bound: dict[str, Any] = {
        k: question[k] for k in ("tool_call_id", "approval_id") if question and k in question
    }
    return {"approved": approved, **bound}


class ChatSession:
    """One `taskagent chat`: the current thread, rendering, and inline approvals."""

    def __init__(self, client: AgentClient, as_json: bool = False) -> None:
        self.client = client
        self.as_json = as_json
        self.thread_id: str | None = None

    async def run(self, thread_id: str | None, message: str | None, approve: bool | None) -> None:
        """Resume `thread_id` if given, then answer, send one message, or converse."""
        pending = None
        if thread_id is not None:
            view = await self.client.thread(thread_id)
            self.thread_id = thread_id
            pending = view.interrupt
            if not self.as_json:
                console.print(plain(f"Resuming thread {thread_id}", style="dim"))
                print_history(console, view.messages, last=6)
        if approve is not None:
            done = await self.turn(resume=answer(approve, pending))
        elif message is not None:
            if pending is not None and not self.as_json:
                await self.turn(resume=answer(self.ask(pending), pending))
            done = await self.turn(message=message)
        else:
            await self.converse(pending)
            return
        if self.as_json:
            print_json(done)

    async def converse(self, pending: dict[str, Any] | None) -> None:
        """Read messages and slash commands until /quit or end of input."""
        console.print(
            f"[bold]taskagent[/] [dim]({self.client.where})[/] — {GREETING}", highlight=False
        )
        if pending is not None:
            await self.turn(resume=answer(self.ask(pending), pending))
        while True:
            try:
                with interruptible():
                    text = console.input("[bold cyan]you>[/] ").strip()
            except (EOFError, KeyboardInterrupt):
                console.print()
                break
            if text in ("/quit", "/exit"):
                break
            try:
                await self.command(text)
            except ClientError as exc:
                errors.print(plain(exc.message, style="red"), soft_wrap=True, highlight=False)

    async def command(self, text: str) -> None:
        """Run one slash command, or send `text` to the agent."""
        if not text:
            return
        if text == "/new":
            self.thread_id = None
            console.print("[dim]New thread.[/]")
        elif text == "/threads":
            console.print(threads_table(await self.client.threads()))
        elif text == "/history":
            if self.thread_id is None:
                console.print("[dim]No thread yet.[/]")
            else:
                print_history(console, (await self.client.thread(self.thread_id)).messages)
        elif text == "/health":
            for line in health_lines(await self.client.health()):
                console.print(line)
        elif text.startswith("/"):
            console.print(HELP_TEXT, soft_wrap=True)
        else:
            await self.turn(message=text)

    async def turn(
        self, message: str | None = None, resume: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Run a turn, asking inline whenever it stops for an approval; return its end."""
        while True:
            done = await self._stream(message, resume)
            self.thread_id = str(done.get("thread_id") or self.thread_id)
            interrupt = done.get("interrupt")
            if self.as_json or not interrupt:
                return done
            message, resume = None, answer(self.ask(interrupt), interrupt)

    async def _stream(self, message: str | None, resume: dict[str, Any] | None) -> dict[str, Any]:
        view = None if self.as_json else TurnView(console)
        done: dict[str, Any] | None = None
        try:
            async for event in self.client.stream_turn(
                message=message, thread_id=self.thread_id, resume=resume
            ):
                if view is not None:
                    view.show(event)
                if event.kind == "done":
                    done = event.data
        finally:
            if view is not None:
                view.finish(done)
        if done is None:
            raise ClientError("The run ended without an answer.")
        if view is not None:
            console.print(footer(done), soft_wrap=True)
        return done

    def ask(self, interrupt: dict[str, Any]) -> bool:
        """Ask the approval question on the terminal; anything but y/yes is a no."""
        question = printable(str(interrupt.get("question", "Approve?")))
        try:
            with interruptible():
                answer = console.input(
                    Text.assemble(("  ? ", "bold yellow"), question, (" [y/N] ", "dim"))
                )
        except EOFError:
            console.print()
            answer = ""
        return answer.strip().lower() in ("y", "yes")
