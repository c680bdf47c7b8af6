"""The `taskagent` command: serve the API, chat with the agent, manage tasks and keys.

Every command but `serve` and `keys` works on the local database in-process by default, or
on a running server with `--url` (and `--api-key`); `--json` prints only JSON on stdout.
"""

from __future__ import annotations

import ipaddress
import json
import logging.config
import os
import socket
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from graph.settings import ConfigError, get_settings
from server.cli.chat import CHAT_EXAMPLES, chat
from server.cli.options import ApiKey, AsJson, Url, prepare_data_dir, run_client
from server.cli.render import console, plain, print_json, threads_table
from server.cli.tasks import tasks_app
from server.mcp.server import mcp_command
from server.security.auth import ROLES, KeyError_, KeyRing, add_key

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


def port_problem(host: str, port: int) -> str | None:
    """Return why `host`:`port` cannot be bound (in use, no permission), or None."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As uvicorn binds: a port left in TIME_WAIT by a stopped server is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to bind (default HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default PORT or 8000).")] = None,
    workers: Annotated[
        int,
        typer.Option(
            help="Server processes sharing the port and the data dir (runs are leased in the"
            " database, so any process finishes a run whose process died).",
        ),
    ] = 1,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            help="A langgraph.json whose graphs to serve beside the task agent"
            " (TASKAGENT_GRAPHS_CONFIG).",
        ),
    ] = None,
) -> None:
    """Start the HTTP API server."""
    import uvicorn

    from graph.redaction import Redactor
    from server.observability.logs import log_config

    if config is not None:
        # Through the environment, so every worker process serves the same graphs.
        os.environ["TASKAGENT_GRAPHS_CONFIG"] = config
    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    most = max_workers()
    if not 1 <= workers <= most:
        raise ConfigError(
            f"--workers {workers} is out of range; give 1 to {most} (four per CPU on this machine)."
        )
    try:
        keys_enabled = KeyRing.from_settings(settings).enabled
    except KeyError_ as exc:
        raise ConfigError(str(exc)) from None
    except (ValueError, KeyError) as exc:
        raise ConfigError(
            f"the keys file {settings.keys_path} (TASKAGENT_KEYS_FILE) is unreadable ({exc});"
            " restore it or remove it and create keys with `taskagent keys add`."
        ) from None
    if not keys_enabled and not is_loopback(host):
        # Without keys everyone is the local admin: that must not be reachable from outside.
        raise ConfigError(
            f"refusing to bind {host} (HOST or --host): without API keys the server only serves"
            " loopback. Create keys with `taskagent keys add` or set TASKAGENT_API_KEYS."
        )
    prepare_data_dir(settings)
    if settings.graphs_config is not None:
        import asyncio

        from server.runs.graphs import check_graphs

        asyncio.run(check_graphs(settings))
    if (problem := port_problem(host, port)) is not None:
        raise ConfigError(
            f"cannot listen on {host}:{port} ({problem}); stop what uses the port or choose"
            " another with PORT or --port (and check HOST or --host)."
        )
    logging_config = log_config(
        settings.log_level, settings.log_format, redactor=Redactor.from_settings(settings)
    )
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        # Forwarded headers are honoured only from TASKAGENT_FORWARDED_ALLOW_IPS (behind_proxies);
        # uvicorn's own default would trust them from any local process.
        "proxy_headers": False,
        "log_level": settings.log_level.lower(),
        # h11, not httptools: httptools buffers a request head of any size (hundreds of MB),
        # h11 answers 431 once the head passes this limit. The cost is ~0.1 ms a request.
        "http": "h11",
        "h11_max_incomplete_event_size": settings.max_header_bytes,
    }
    if workers == 1:
        from server.app import create_app
        from server.security.proxies import behind_proxies

        uvicorn.run(
            behind_proxies(create_app(settings), settings.forwarded_allow_ips),
            log_config=logging_config,
            **options,
        )
        return
    # Each worker is a fresh (spawned) interpreter that builds its app and its logging from
    # the same environment (server.app:worker_app), so this supervisor never imports the app;
    # the redacting log formatter cannot be pickled across, so uvicorn gets no log config.
    logging.config.dictConfig(logging_config)
    uvicorn.run("server.app:worker_app", factory=True, workers=workers, log_config=None, **options)


def max_workers() -> int:
    """The most `serve --workers` accepts: four per CPU this process may use."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 4 * (cpus or 1)


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
        table.add_row(*(plain(value) for value in key.values()))
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


def main() -> None:
    """Run `taskagent`; a configuration error is one line on stderr and exit status 2."""
    # Everything the service writes (databases, WAL files, keys) is for this user only.
    os.umask(0o077)
    try:
        app()
    except ConfigError as exc:
        sys.stderr.write(f"taskagent: configuration error: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
