"""`taskagent tasks`: list and change tasks directly, through the agent's own tool path."""

from __future__ import annotations

import re
from typing import Annotated, Any

import click
import typer

from server.cli.client import AgentClient
from server.cli.options import ApiKey, AsJson, Url, run_client
from server.cli.render import console, errors, plain, print_json, task_line, tasks_table
from tools.schemas import Priority, Status
from tools.text import printable

tasks_app = typer.Typer(
    help="List and change tasks directly, without the model (same rules and audit as the agent).",
    no_args_is_help=True,
)


def _task_id(value: str) -> str:
    """Accept TASK-0003, task-3 or 3."""
    match = re.fullmatch(r"(?:task-)?(\d{1,9})", value.strip(), re.IGNORECASE)
    return f"TASK-{int(match.group(1)):04d}" if match else value


TaskId = Annotated[
    str,
    typer.Argument(help="Task id: TASK-0003, or just 3.", callback=_task_id, show_default=False),
]


@tasks_app.command(
    "list",
    epilog="Examples:\n\n  taskagent tasks list --status pending --priority high\n\n"
    "  taskagent tasks list -q passport --json",
)
def tasks_list(
    status: Annotated[Status | None, typer.Option(help="Only tasks with this status.")] = None,
    priority: Annotated[
        Priority | None, typer.Option(help="Only tasks with this priority.")
    ] = None,
    query: Annotated[
        str | None,
        typer.Option("--query", "-q", help="Words that must appear in the title or notes."),
    ] = None,
    overdue: Annotated[
        bool, typer.Option("--overdue", help="Only open tasks past their due date.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=200, help="At most this many tasks.")] = 50,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """List your tasks, soonest due first."""
    filters: dict[str, Any] = {"status": status, "priority": priority, "text": query}
    filters = {k: v for k, v in filters.items() if v is not None}
    filters.update({"overdue": True} if overdue else {})
    filters.update({"limit": limit} if limit != 50 else {})
    result = run_client(url, api_key, lambda client: client.list_tasks(filters))
    if as_json:
        print_json(result)
    elif result["tasks"]:
        console.print(tasks_table(result["tasks"]))
    else:
        console.print("No tasks match.")


@tasks_app.command(
    "add",
    epilog="Example:\n\n  taskagent tasks add 'Renew the passport' -p urgent --due tomorrow",
)
def tasks_add(
    title: Annotated[str, typer.Argument(help="Short title of the task.", show_default=False)],
    priority: Annotated[
        Priority, typer.Option("--priority", "-p", help="low, normal, high or urgent.")
    ] = "normal",
    due: Annotated[
        str | None,
        typer.Option("--due", "-d", help="Due date: YYYY-MM-DD, 'tomorrow', 'next Friday'…"),
    ] = None,
    description: Annotated[str, typer.Option(help="Longer notes.")] = "",
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="A label; repeat for several.")
    ] = None,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Create a task (needs the write or admin role)."""
    fields: dict[str, Any] = {"title": title, "priority": priority, "description": description}
    fields.update({"due_date": due} if due else {})
    fields.update({"tags": tag} if tag else {})
    task = run_client(url, api_key, lambda client: client.create_task(fields))
    if as_json:
        print_json(task)
    else:
        console.print("Created", task_line(task))


@tasks_app.command("show")
def tasks_show(
    task_id: TaskId, as_json: AsJson = False, url: Url = None, api_key: ApiKey = None
) -> None:
    """Show one task."""
    task = run_client(url, api_key, lambda client: client.get_task(task_id))
    if as_json:
        print_json(task)
    else:
        console.print(task_line(task))
        if task.get("description"):
            console.print(plain(task["description"]), highlight=False)


@tasks_app.command("done")
def tasks_done(
    task_id: TaskId, as_json: AsJson = False, url: Url = None, api_key: ApiKey = None
) -> None:
    """Mark a task completed."""
    task = run_client(url, api_key, lambda client: client.complete_task(task_id))
    if as_json:
        print_json(task)
    else:
        console.print("Completed", task_line(task))


@tasks_app.command("delete", epilog="Example:\n\n  taskagent tasks delete TASK-0003 --yes")
def tasks_delete(
    task_id: TaskId,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Delete a task for good; asks first unless --yes."""

    async def delete(client: AgentClient) -> dict[str, Any] | None:
        if not yes:
            task = await client.get_task(task_id)
            question = printable(f'Delete {task["id"]} "{task["title"]}"?')
            if not click.confirm(question, default=False, err=True, abort=False):
                return None
        return await client.delete_task(task_id)

    try:
        result = run_client(url, api_key, delete)
    except click.Abort:
        result = None
    if result is None:
        errors.print(plain(f"Kept {task_id.upper()}."))
        raise typer.Exit(1)
    if as_json:
        print_json(result)
    else:
        deleted = result["deleted"]
        console.print(plain(f'Deleted {deleted["id"]} "{deleted["title"]}"'))
