"""`taskagent chat`: streamed answers, one-line tool calls, inline approvals, slash commands."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.text import Text

from server.cli.client import AgentClient, ClientError, is_id_prefix
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

HELP_TEXT = """Type a message for the agent, or a command:
  /new (start a new thread)
  /threads (list your threads, numbered)
  /open N (switch to thread N of /threads; or give 4+ characters of a thread id)
  /history (this thread)
  /health (model tiers and database)
  /help
  /quit (or Ctrl+D) to leave
Ctrl+C while an answer streams stops it (its run is cancelled) and keeps the chat;
Ctrl+C at the prompt leaves. A deletion asks first: answer y/yes or n/no."""
GREETING = "Type a message, or /new /threads /open /history /health /help /quit."
YES = ("y", "yes")
NO = ("n", "no", "")

CHAT_EXAMPLES = """Examples:

  taskagent chat

  taskagent chat -m "create an urgent task to renew the passport tomorrow"

  taskagent chat --thread 6f1c -m "what's overdue?"

  taskagent chat --thread 6f1c --approve --json

  taskagent chat --url http://127.0.0.1:8000 --api-key tak_...
"""


def chat(
    thread: Annotated[
        str | None,
        typer.Option(
            "--thread", "-t", help="Resume this thread (its id, or its first 4+ characters)."
        ),
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
    """Chat with the agent: the answer streams as it is written, each tool call is one line.

    Deleting a task asks for approval inline (y/N).

    Inside the chat: /new, /threads, /open N, /history, /health, /help, /quit. Ctrl+C stops
    the answer being written (the run is cancelled); at the prompt it leaves.

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


class Stop:
    """Ctrl+C while a turn streams: cancel its run (once its id is known) and keep the chat.

    Under asyncio.run a Ctrl+C would cancel the whole chat; while a turn streams this
    handler takes SIGINT instead. The run is always stopped by id, so the first press waits
    for the run's `metadata` event (it comes first) and a second press gives up waiting.
    """

    def __init__(self) -> None:
        self.asked = False
        self.run_id: str | None = None
        self.reader: asyncio.Task[Any] | None = None
        self._loop = asyncio.get_running_loop()

    def press(self, *_: object) -> None:
        """Handle SIGINT (in the main thread, between bytecodes: only schedule work here)."""
        if self.reader is not None and (self.asked or self.run_id is not None):
            self._loop.call_soon_threadsafe(self.reader.cancel)
        self.asked = True

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Take SIGINT for the duration of the block."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, self.press)
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
        self.pending: dict[str, Any] | None = None
        self.listed: list[str] = []

    async def run(self, thread_id: str | None, message: str | None, approve: bool | None) -> None:
        """Resume `thread_id` (or an id prefix) if given, then answer, send one message, or talk."""
        if thread_id is not None:
            await self.open(thread_id)
        if approve is not None:
            done = await self.turn(resume=answer(approve, self.pending))
        elif message is not None:
            if self.pending is not None and not self.as_json:
                approved = self.ask(self.pending)
                if approved is None:
                    raise typer.Exit(130)
                await self.turn(resume=answer(approved, self.pending))
            done = await self.turn(message=message)
        else:
            await self.converse()
            return
        if done is None:
            raise typer.Exit(130)
        if self.as_json:
            print_json(done)

    async def open(self, thread: str, verb: str = "Resuming") -> None:
        """Make `thread` (an id, or its first 4+ characters) the current thread."""
        if is_id_prefix(thread):
            thread = await self.client.resolve_thread(thread)
        view = await self.client.thread(thread)
        self.thread_id, self.pending = view.thread_id, view.interrupt
        if not self.as_json:
            console.print(plain(f"{verb} thread {view.thread_id}", style="dim"))
            print_history(console, view.messages, last=6)

    async def converse(self) -> None:
        """Read messages and slash commands until /quit, Ctrl+D or Ctrl+C at the prompt."""
        console.print(
            f"[bold]taskagent[/] [dim]({self.client.where})[/] — {GREETING}", highlight=False
        )
        if self.pending is not None:
            await self.answer_pending()
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
        word, _, rest = text.partition(" ")
        if text == "/new":
            self.thread_id, self.pending = None, None
            console.print("[dim]New thread.[/]")
        elif text == "/threads":
            threads = await self.client.threads()
            self.listed = [t["thread_id"] for t in threads]
            console.print(threads_table(threads))
        elif word == "/open":
            await self.open(self._numbered(rest.strip()), "Switched to")
            if self.pending is not None:
                await self.answer_pending()
        elif text == "/history":
            if self.thread_id is None:
                console.print("[dim]No thread yet.[/]")
            else:
                print_history(console, (await self.client.thread(self.thread_id)).messages)
        elif text == "/health":
            for line in health_lines(await self.client.health()):
                console.print(line)
        elif text.startswith("/"):
            console.print(plain(HELP_TEXT), soft_wrap=True)
        elif self.pending is not None and text.lower() in (*YES, "n", "no"):
            await self.turn(resume=answer(text.lower() in YES, self.pending))
        else:
            await self.turn(message=text)

    def _numbered(self, choice: str) -> str:
        """Return the thread `choice` names: a number of the last /threads, or an id (prefix)."""
        if not choice:
            raise ClientError("Say which thread: /open N (a number from /threads) or an id.")
        # Four digits or more may be the start of an id ("793467f4-…") rather than a number.
        if choice.isdecimal() and not (len(choice) >= 4 and int(choice) > len(self.listed)):
            if not self.listed:
                raise ClientError("List the threads with /threads first, then /open N.")
            if not 1 <= int(choice) <= len(self.listed):
                raise ClientError(
                    f"There is no thread {choice}: /threads lists 1 to {len(self.listed)}."
                )
            return self.listed[int(choice) - 1]
        return choice

    async def answer_pending(self) -> None:
        """Ask the approval the thread waits for; Ctrl+C leaves it waiting."""
        assert self.pending is not None
        approved = self.ask(self.pending)
        if approved is not None:
            await self.turn(resume=answer(approved, self.pending))

    async def turn(
        self, message: str | None = None, resume: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Run a turn, asking inline whenever it stops for an approval; return its end.

        None when the user stopped it with Ctrl+C (its run is cancelled by then).
        """
        while True:
            done = await self._stream(message, resume)
            if done is None:
                return None
            self.thread_id = str(done.get("thread_id") or self.thread_id)
            interrupt = done.get("interrupt")
            self.pending = interrupt or None
            if self.as_json or not interrupt:
                return done
            approved = self.ask(interrupt)
            if approved is None:
                return done
            message, resume = None, answer(approved, interrupt)

    async def _stream(
        self, message: str | None, resume: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        view = None if self.as_json else TurnView(console)
        stop = Stop()
        done: dict[str, Any] | None = None

        async def read() -> None:
            nonlocal done
            async for event in self.client.stream_turn(
                message=message, thread_id=self.thread_id, resume=resume
            ):
                if event.kind == "metadata":
                    stop.run_id = str(event.data.get("run_id") or "") or None
                    self.thread_id = str(event.data.get("thread_id") or self.thread_id)
                    if stop.asked:
                        return
                if view is not None:
                    view.show(event)
                if event.kind == "done":
                    done = event.data

        try:
            with stop.installed():
                stop.reader = asyncio.ensure_future(read())
                await asyncio.wait({stop.reader})
                stopped = stop.reader.cancelled() or (stop.asked and done is None)
                if stopped and stop.run_id is not None:
                    await self.client.cancel_run(stop.run_id)
        finally:
            if view is not None:
                view.finish(done)
        if stopped:
            errors.print(plain("Stopped: the answer was cancelled.", style="yellow"))
            return None
        stop.reader.result()  # a refusal or failure of the turn, as a ClientError
        if done is None:
            raise ClientError("The run ended without an answer.")
        if view is not None:
            console.print(footer(done), soft_wrap=True)
        return done

    def ask(self, interrupt: dict[str, Any]) -> bool | None:
        """Ask the approval question on the terminal: y/yes or n/no (Enter is no).

        None when the user pressed Ctrl+C: the approval stays pending.
        """
        question = printable(str(interrupt.get("question", "Approve?")))
        while True:
            try:
                with interruptible():
                    reply = console.input(
                        Text.assemble(("  ? ", "bold yellow"), question, (" [y/N] ", "dim"))
                    )
            except EOFError:
                console.print()
                reply = ""
            except KeyboardInterrupt:
                console.print()
                console.print(plain("Still waiting for your answer (y or n).", style="dim"))
                return None
            reply = reply.strip().lower()
            if reply in YES or reply in NO:
                return reply in YES
            console.print(plain("Answer y (yes) or n (no).", style="dim"))
