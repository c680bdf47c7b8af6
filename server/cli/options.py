"""What every client command shares: --url, --api-key, --json, and running against a client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import psycopg
import typer
from psycopg_pool import PoolTimeout

from graph.settings import ConfigError, Settings, get_settings
from server.cli.client import AgentClient, ClientError, open_client
from server.cli.render import errors, plain
from tools.sqlite import secure_data_dir

T = TypeVar("T")


def _url(value: str | None) -> str | None:
    if value and not value.startswith(("http://", "https://")):
        raise typer.BadParameter(f"{value!r} is not a URL; give one like http://127.0.0.1:8000")
    return value


Url = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="TASKAGENT_URL",
        callback=_url,
        help="Use the taskagent server at this URL instead of the local database.",
        rich_help_panel="Connection",
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="TASKAGENT_API_KEY",
        help="API key for the server at --url (see `taskagent keys add`).",
        rich_help_panel="Connection",
        show_default=False,
    ),
]
AsJson = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON on stdout and nothing else.")
]


def prepare_data_dir(settings: Settings) -> None:
    """Make the data directory private and its schemas current; ConfigError when it cannot be.

    Migrations run here, once, before any server worker starts: a data dir written by a
    newer taskagent is one line, not a traceback from every worker.
    """
    try:
        secure_data_dir(settings.data_dir)
    except OSError as exc:
        raise ConfigError(
            f"TASKAGENT_DATA_DIR={settings.data_dir} cannot be used ({exc.strerror or exc});"
            " point it at a directory this user can create and write."
        ) from None
    try:
        asyncio.run(_upgrade(settings))
    except (psycopg.Error, PoolTimeout) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"DATABASE_URL: PostgreSQL cannot be used ({first_line}).") from None
    except RuntimeError as exc:
        where = (
            "DATABASE_URL" if settings.postgres_url else f"TASKAGENT_DATA_DIR={settings.data_dir}"
        )
        raise ConfigError(f"{where}: {exc}") from None


async def _upgrade(settings: Settings) -> None:
    from graph.redaction import Redactor
    from server.runs.crons import CronStore
    from server.runs.store import RunStore
    from server.runs.threads import ThreadIndex
    from server.runs.user_store import open_user_store
    from tools.store import TaskStore

    timeout, synchronous = settings.busy_timeout_ms, settings.sqlite_synchronous
    url = settings.postgres_url
    tasks = await TaskStore.open(
        settings.tasks_db,
        busy_timeout_ms=timeout,
        synchronous=synchronous,
        redactor=Redactor.from_settings(settings),
        database_url=url,
    )
    await tasks.close()
    threads = await ThreadIndex.open(
        settings.tasks_db, busy_timeout_ms=timeout, synchronous=synchronous, database_url=url
    )
    await threads.close()
    runs = await RunStore.open(
        settings.runs_db, busy_timeout_ms=timeout, synchronous=synchronous, database_url=url
    )
    await runs.close()
    store = await open_user_store(settings, threads)
    await store.close()
    crons = await CronStore.open(
        settings.runs_db, busy_timeout_ms=timeout, synchronous=synchronous, database_url=url
    )
    await crons.close()


def run_client(
    url: str | None, api_key: str | None, work: Callable[[AgentClient], Coroutine[Any, Any, T]]
) -> T:
    """Run `work` against the local or remote agent; a refusal is one red line and exit 1."""
    if url is None:
        prepare_data_dir(get_settings())

    async def main() -> T:
        async with open_client(url, api_key) as client:
            return await work(client)

    try:
        return asyncio.run(main())
    except ClientError as exc:
        errors.print(plain(exc.message, style="red"), soft_wrap=True, highlight=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        errors.print("[dim]Interrupted.[/]")
        raise typer.Exit(130) from None
