"""The `taskagent` command: serve the API, chat with the agent, manage tasks and keys.

Every command but `serve` and `keys` works on the local database in-process by default, or
on a running server with `--url` (and `--api-key`); `--json` prints only JSON on stdout.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Annotated

import typer
from rich.table import Table

from graph.settings import get_settings
from server.auth import ROLES, KeyError_, KeyRing, add_key
from server.cli_chat import CHAT_EXAMPLES, chat
from server.cli_options import ApiKey, AsJson, Url, run_client
from server.cli_render import console, print_json, threads_table
from server.cli_tasks import tasks_app
from server.mcp_server import mcp_command

app = typer.Typer(
    help="taskagent: a task-management agent you can serve, chat with, or script.",
    no_args_is_help=True,
)


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

    from graph.redaction import Redactor
    from server.app import create_app
    from server.logs import log_config

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
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        log_config=log_config(
            settings.log_level, settings.log_format, redactor=Redactor.from_settings(settings)
        ),
    )


keys_app = typer.Typer(help="Manage API keys (only their SHA-256 digests are stored).")
app.add_typer(keys_app, name="keys")
app.command("mcp")(mcp_command)


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
def keys_list(as_json: AsJson = False) -> None:
    """List the users and roles of the keys in the keys file (never the keys)."""
    path = get_settings().keys_path
    keys = [
        {
            "key_id": row["sha256"][:8],
            "user": row["user"],
            "role": row["role"],
            "label": row.get("label", ""),
            "created_at": row["created_at"],
        }
        for row in (json.loads(path.read_text()) if path.exists() else [])
    ]
    if as_json:
        print_json(keys)
        return
    table = Table("key id", "user", "role", "label", "created")
    for key in keys:
        table.add_row(*key.values())
    console.print(table)


app.command(epilog=CHAT_EXAMPLES)(chat)
app.add_typer(tasks_app, name="tasks")


@app.command("threads", epilog="Example:\n\n  taskagent threads --json")
def threads_command(as_json: AsJson = False, url: Url = None, api_key: ApiKey = None) -> None:
    """List your conversation threads, most recent first (resume with `chat --thread ID`)."""
    threads = run_client(url, api_key, lambda client: client.threads())
    if as_json:
        print_json(threads)
    else:
        console.print(threads_table(threads))


if __name__ == "__main__":
    app()
