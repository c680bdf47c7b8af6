"""The `taskagent` command: serve the API, or chat with the agent in the terminal."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from graph.context import Context
from graph.settings import get_settings
from server.auth import ROLES, KeyError_, KeyRing, add_key
from server.runner import AgentRunner, TurnError

app = typer.Typer(
    help="taskagent: a task-management agent you can serve or chat with.", no_args_is_help=True
)
console = Console()

HELP_TEXT = """Commands: /new (start a new thread), /threads (list threads), /history (this thread),
/health (model tiers and database), /quit. Anything else is sent to the agent."""


def is_loopback(host: str) -> bool:
    """Return whether `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to bind (default HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default PORT or 8000).")] = None,
) -> None:
    """Start the HTTP API server."""
    import uvicorn

    from server.app import create_app

    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    try:
        keys_enabled = KeyRing.from_settings(settings).enabled
    except (KeyError_, ValueError) as exc:
        console.print(f"[red]Invalid key configuration: {exc}[/]", soft_wrap=True)
        raise typer.Exit(2) from None
    if not keys_enabled and not is_loopback(host):
        # Without keys everyone is the local admin: that must not be reachable from outside.
        console.print(
            f"[red]Refusing to bind {host}: without API keys the server only serves loopback."
            " Create keys with `taskagent keys add` or set TASKAGENT_API_KEYS.[/]",
            soft_wrap=True,
        )
        raise typer.Exit(2)
    uvicorn.run(create_app(settings), host=host, port=port, log_level=settings.log_level.lower())


keys_app = typer.Typer(help="Manage API keys (only their SHA-256 digests are stored).")
app.add_typer(keys_app, name="keys")


@keys_app.command("add")
def keys_add(
    user: Annotated[str, typer.Option(help="User the key acts for.")],
    role: Annotated[str, typer.Option(help="read, write or admin.")] = "write",
    label: Annotated[str, typer.Option(help="A note to recognise the key by.")] = "",
) -> None:
    """Create a key, store its digest in the keys file and print the key once."""
    settings = get_settings()
    if role not in ROLES:
        console.print(f"[red]role must be one of {', '.join(ROLES)}[/]")
        raise typer.Exit(2)
    key = add_key(settings.keys_path, user, role, label)
    console.print(f"Key for {user} ({role}), shown once; keep it secret:")
    typer.echo(key)
    console.print(f"[dim]stored as a digest in {settings.keys_path}[/]")


@keys_app.command("list")
def keys_list() -> None:
    """List the users and roles of the keys in the keys file (never the keys)."""
    settings = get_settings()
    table = Table("key id", "user", "role", "label", "created")
    path = settings.keys_path
    for row in json.loads(path.read_text()) if path.exists() else []:
        table.add_row(
            row["sha256"][:8], row["user"], row["role"], row.get("label", ""), row["created_at"]
        )
    console.print(table)


@app.command()
def chat(
    thread: Annotated[str | None, typer.Option("--thread", help="Resume this thread id.")] = None,
    message: Annotated[
        str | None,
        typer.Option("--message", "-m", help="Send one message, print the answer, exit."),
    ] = None,
) -> None:
    """Chat with the agent in the terminal; answers stream as they are written."""
    asyncio.run(_chat(thread, message))


async def _chat(thread_id: str | None, one_message: str | None) -> None:
    runner = await AgentRunner.open()
    context = Context()
    try:
        if thread_id is not None:
            try:
                await runner.check_access(thread_id, context.user_id)
            except TurnError as exc:
                console.print(f"[red]{exc.message}[/]")
                raise typer.Exit(1) from None
            console.print(f"[dim]Resuming thread {thread_id}[/]")
            await _print_history(runner, thread_id, last=6)
        if one_message is not None:
            await _send(runner, context, thread_id, one_message)
            return
        console.print(f"[bold]taskagent[/] — {HELP_TEXT}")
        while True:
            try:
                text = console.input("[bold cyan]you>[/] ").strip()
            except (EOFError, KeyboardInterrupt):
                break
            if not text:
                continue
            if text in ("/quit", "/exit"):
                break
            if text == "/new":
                thread_id = None
                console.print("[dim]New thread.[/]")
            elif text == "/threads":
                await _print_threads(runner, context)
            elif text == "/history":
                if thread_id:
                    await _print_history(runner, thread_id)
                else:
                    console.print("[dim]No thread yet.[/]")
            elif text == "/health":
                _print_health(runner)
            elif text.startswith("/"):
                console.print(HELP_TEXT)
            else:
                thread_id = await _send(runner, context, thread_id, text)
    finally:
        await runner.close()


async def _send(
    runner: AgentRunner, context: Context, thread_id: str | None, text: str
) -> str | None:
    resume: dict[str, Any] | None = None
    message: str | None = text
    while True:
        try:
            done: dict[str, Any] = {}
            console.print("[bold green]agent>[/] ", end="")
            async for event in runner.stream_turn(
                context=context, message=message, thread_id=thread_id, resume=resume
            ):
                if event.kind == "token":
                    console.print(event.data["text"], end="", markup=False, highlight=False)
                elif event.kind == "tool_call":
                    args = json.dumps(event.data["arguments"])
                    console.print(
                        f"\n  [yellow]→ {event.data['tool']}[/] {args}",
                        markup=True,
                        highlight=False,
                    )
                elif event.kind == "tool_result":
                    result = event.data["result"]
                    ok = isinstance(result, dict) and result.get("ok")
                    mark = "[green]✓[/]" if ok else "[red]✗[/]"
                    console.print(f"  {mark} {event.data['tool']}", end="\n")
                elif event.kind == "done":
                    done = event.data
            thread_id = done.get("thread_id", thread_id)
            console.print()
            fallback = " (fallback)" if done.get("fallback_used") else ""
            console.print(
                f"[dim]  model: {done.get('model_used')}{fallback} · thread {thread_id}[/]"
            )
            interrupt = done.get("interrupt")
            if not interrupt:
                return thread_id
            question = interrupt.get("question", "Approve?")
            approved = typer.confirm(f"  {question}", default=False)
            message, resume = None, {"approved": approved}
        except TurnError as exc:
            console.print(f"\n[red]{exc.message}[/]")
            return thread_id


async def _print_threads(runner: AgentRunner, context: Context) -> None:
    table = Table("thread", "title", "updated")
    for info in await runner.threads.list(context.user_id):
        table.add_row(info.thread_id, info.title, info.updated_at)
    console.print(table)


async def _print_history(runner: AgentRunner, thread_id: str, last: int | None = None) -> None:
    messages = await runner.history(thread_id)
    for message in messages[-last:] if last else messages:
        if message.type == "human":
            console.print(f"[cyan]you>[/] {message.content}", highlight=False)
        elif message.type == "ai" and message.content:
            console.print(f"[green]agent>[/] {message.content}", highlight=False)


def _print_health(runner: AgentRunner) -> None:
    for tier in runner.services.tiers:
        console.print(f"  {tier.label}: breaker {tier.breaker.state}")


if __name__ == "__main__":
    app()
