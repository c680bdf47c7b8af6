"""What `taskagent` prints: live markdown answers, one-line tool calls, tables and JSON.

Task titles, answers and errors may hold another user's words: they are printed as `Text`
(never parsed as Rich markup) and without control characters (see `tools.text`).
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime
from typing import Any

from markdown_it import MarkdownIt
from rich import box
from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text

from server.cli.client import ChatEvent
from tools.text import printable

console = Console()
errors = Console(stderr=True)

_BARE = re.compile(r"[\w.:@+-]+")
MAX_VALUE_CHARS = 60
# Characters a terminal may act on even inside a JSON string (json.dumps escapes only C0).
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def plain(value: Any, style: str = "") -> Text:
    """Return `value` as text shown literally: no markup, no control characters."""
    return Text(printable(str(value)), style=style)


def print_json(value: Any) -> None:
    """Write `value` as JSON on stdout, bypassing rich so nothing but JSON is printed."""
    text = json.dumps(value, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write(_JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")
    sys.stdout.flush()


def _argument(value: Any) -> str:
    if isinstance(value, str):
        if len(value) > MAX_VALUE_CHARS:
            value = value[: MAX_VALUE_CHARS - 1] + "…"
        return value if _BARE.fullmatch(value) else json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False)


def tool_call_line(tool: str, arguments: dict[str, Any]) -> Text:
    """Return `→ create_task title="…" priority=high`."""
    args = printable(" ".join(f"{name}={_argument(value)}" for name, value in arguments.items()))
    line = plain(f"  → {tool}", style="bold yellow")
    if args:
        line.append(" " + args, style="yellow")
    return line


def tool_outcome(tool: str, result: Any) -> tuple[bool, str]:
    """Return whether a tool call succeeded and a few words saying what it did."""
    if not isinstance(result, dict):
        return False, str(result)
    if not result.get("ok"):
        return False, str(result.get("error") or f"{tool} failed")
    task = result.get("task")
    if isinstance(task, dict):
        verb = {
            "create_task": "created",
            "update_task": "updated",
            "complete_task": "completed",
        }.get(tool, f'"{task.get("title", "")}"')
        changed = result.get("changed")
        return True, f"{task.get('id')} {verb}" + (f" ({', '.join(changed)})" if changed else "")
    if isinstance(result.get("deleted"), dict):
        return True, f"{result['deleted'].get('id')} deleted"
    if "tasks" in result:
        count = result.get("count", len(result["tasks"]))
        return True, f"{count} task{'' if count == 1 else 's'}"
    if "total" in result:
        return True, f"summary of {result['total']} task(s)"
    return True, tool


def tool_result_line(tool: str, result: Any) -> Text:
    """Return `✓ TASK-0007 created` or `✗ <why it failed>`."""
    ok, words = tool_outcome(tool, result)
    return plain(f"  {'✓' if ok else '✗'} {words}", style="green" if ok else "red")


class TurnView:
    """Renders one turn as it streams: answer text as live markdown, tool calls as lines.

    On a terminal the answer is re-rendered as markdown while tokens arrive; otherwise (a
    pipe, a test runner) each stretch of answer text is written once it ends, as plain text.
    The turn's last words are the delivered answer from the `done` event, not the streamed
    tokens: a streamed answer can be withdrawn (a claim no tool call backs) or prefixed (a
    fallback notice), as the browser does too.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self._text = ""
        self._display: Live | None = None

    def show(self, event: ChatEvent) -> None:
        """Render one event of the turn."""
        if event.kind == "token":
            self._token(str(event.data.get("text", "")))
        elif event.kind == "tool_call":
            self._pause()
            line = tool_call_line(str(event.data.get("tool")), event.data.get("arguments") or {})
            self.console.print(line, soft_wrap=True)
        elif event.kind == "tool_result":
            self._pause()
            line = tool_result_line(str(event.data.get("tool")), event.data.get("result"))
            self.console.print(line, soft_wrap=True)

    def _token(self, text: str) -> None:
        text = printable(text)
        if not text:
            return
        self._text += text
        if not self.live:
            return
        if self._display is None:
            self.console.print(Text("agent>", style="bold green"))
            self._display = Live(_markdown(self._text), console=self.console, refresh_per_second=12)
            self._display.start()
        else:
            self._display.update(_markdown(self._text))

    def _pause(self, delivered: str | None = None) -> None:
        """End the current stretch of answer text, showing `delivered` in its place if given."""
        text = self._text if delivered is None else printable(delivered)
        if self._display is not None:
            self._display.update(_markdown(text))
            self._display.stop()
        elif text.strip() and self.live:
            self.console.print(Text("agent>", style="bold green"))
            self.console.print(_markdown(text))
        elif text.strip():
            self.console.out("agent> " + text.rstrip("\n"), highlight=False)
        self._text, self._display = "", None

    def finish(self, done: dict[str, Any] | None = None) -> None:
        """End the turn on the answer `done` delivered (or the streamed text, if none)."""
        delivered = done.get("message") if done and not done.get("interrupt") else None
        self._pause(delivered if isinstance(delivered, str) and delivered.strip() else None)


# Block structure only (paragraphs, lists, headings, code blocks, tables): every inline
# character is shown as written. An answer quotes task titles, which are anyone's words:
# `**x**`, `<b>x</b>` or `[red]x[/red]` in a title must show as typed, and inline HTML would
# otherwise vanish, a link hide its address, an escape eat a backslash.
_BLOCKS_ONLY = (
    MarkdownIt()
    .enable("table")
    .disable(["html_block", "reference"])
    .disable(["escape", "backticks", "emphasis", "link", "image", "autolink", "html_inline"])
    .disable("entity")
)


class LiteralMarkdown(Markdown):
    """Rich's markdown with the text of every line printed literally (see `_BLOCKS_ONLY`)."""

    def __init__(self, markup: str) -> None:
        super().__init__(markup, hyperlinks=False)
        self.parsed = _BLOCKS_ONLY.parse(markup)


def _markdown(text: str) -> Markdown:
    return LiteralMarkdown(text)


def footer(done: dict[str, Any]) -> Text:
    """Return `model: … · thread <id>` under an answer."""
    fallback = " (fallback)" if done.get("fallback_used") else ""
    return plain(
        f"  model: {done.get('model_used')}{fallback} · thread {done.get('thread_id')}",
        style="dim",
    )


def print_history(
    console: Console, messages: list[dict[str, Any]], last: int | None = None
) -> None:
    """Print a conversation: what the user said, tool calls, and the answers."""
    shown = [m for m in messages if m.get("role") in ("user", "assistant")]
    for message in shown[-last:] if last else shown:
        if message["role"] == "user":
            console.print(Text("you> ", style="cyan") + plain(message["content"]), soft_wrap=True)
            continue
        for call in message.get("tool_calls") or []:
            console.print(tool_call_line(call["tool"], call["arguments"]), soft_wrap=True)
        if message.get("content"):
            console.print(
                Text("agent> ", style="green") + plain(message["content"]), soft_wrap=True
            )


def ago(stamp: str, now: datetime | None = None) -> str:
    """Return an ISO-8601 time as people say it: `just now`, `5 min ago`, `yesterday`, a date."""
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    if seconds < 2 * 86400:
        return "yesterday"
    if seconds < 7 * 86400:
        return f"{int(seconds // 86400)} days ago"
    return moment.date().isoformat()


def threads_table(threads: list[dict[str, Any]]) -> Table:
    """Return the user's threads numbered (for `/open N`), with full ids to copy and times."""
    table = Table(box=box.SIMPLE, title=f"{len(threads)} thread(s)", title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("thread", no_wrap=True, min_width=36)
    table.add_column("updated", no_wrap=True)
    table.add_column("title", overflow="ellipsis", no_wrap=True)
    for number, info in enumerate(threads, start=1):
        title = plain(info.get("title") or "(untitled)")
        if info.get("status") not in (None, "idle"):
            waiting = "waiting for approval" if info["status"] == "interrupted" else info["status"]
            title.append(f" ({waiting})", style="yellow")
        updated = plain(ago(str(info.get("updated_at", ""))), style="dim")
        table.add_row(plain(number), plain(info["thread_id"]), updated, title)
    return table


def tasks_table(tasks: list[dict[str, Any]]) -> Table:
    """Return tasks as a table."""
    table = Table("id", "title", "priority", "status", "due", "tags", title=f"{len(tasks)} task(s)")
    styles = {"urgent": "bold red", "high": "yellow", "low": "dim"}
    for task in tasks:
        table.add_row(
            plain(task["id"]),
            plain(task["title"]),
            plain(task["priority"], style=styles.get(task["priority"], "")),
            plain(task["status"]),
            plain(task.get("due_date") or ""),
            plain(", ".join(task.get("tags") or [])),
        )
    return table


def task_line(task: dict[str, Any]) -> Text:
    """Return one task on one line: id, title, priority, status, due date."""
    due = f", due {task['due_date']}" if task.get("due_date") else ""
    return Text.assemble(
        (printable(task["id"]), "bold"),
        printable(f' "{task["title"]}" ({task["priority"]}, {task["status"]}{due})'),
    )


def health_lines(health: dict[str, Any]) -> list[Text]:
    """Return the database state and one line per model tier."""
    lines = [plain(f"  database: {health.get('database')}")]
    for tier in health.get("tiers", []):
        down = f", unreachable: {tier.get('reason')}" if tier.get("status") == "unreachable" else ""
        lines.append(plain(f"  {tier['label']}: breaker {tier['breaker']}{down}"))
    return lines
