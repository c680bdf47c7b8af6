"""How the CLI reaches the agent: in-process on the local database, or a server over HTTP.

Both clients answer the same small interface (`AgentClient`) with the same plain data, so a
command is written once. Every failure a user can cause or meet (bad key, unknown thread,
rate limit, server down) surfaces as a `ClientError` carrying one readable sentence.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import httpx
from httpx_sse import EventSource, ServerSentEvent

from graph.context import Context
from graph.redaction import Redactor
from graph.settings import Settings, get_settings
from server.runs.task_calls import TaskCallError, call_task_tool
from server.runs.threads import UnresolvedPrefix
from tools.store import TaskStore

if TYPE_CHECKING:
    from langchain_core.messages import AnyMessage

    from server.runs.engine import RunManager
    from server.runs.runner import AgentRunner
    from server.runs.threads import ThreadInfo

# A turn can think for a long time, but the server pings the stream every few seconds.
STREAM_READ_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 30.0
STREAM_RETRIES = 3


@dataclass
class ChatEvent:
    """One event of a streamed turn: metadata, token, tool_call, tool_result, interrupt, done."""

    kind: str
    data: dict[str, Any]


class ClientError(Exception):
    """A request the agent refused or could not serve, explained in one sentence."""

    def __init__(self, message: str, status: int = 0, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


@dataclass
class ThreadView:
    """A thread as the CLI shows it: its state, pending approval and conversation."""

    thread_id: str
    status: str
    interrupt: dict[str, Any] | None
    messages: list[dict[str, Any]]


class AgentClient(Protocol):
    """What the commands need from the agent, wherever it runs."""

    where: str

    def stream_turn(
        self,
        *,
        message: str | None = None,
        thread_id: str | None = None,
        resume: dict[str, Any] | None = None,
    ) -> AsyncIterator[ChatEvent]:
        """Run one turn and yield its events, ending with `done`."""
        ...

    async def thread(self, thread_id: str) -> ThreadView:
        """Return one of the caller's threads (ClientError 404 when it is not theirs)."""
        ...

    async def threads(self) -> list[dict[str, Any]]:
        """Return the caller's threads, most recently active first."""
        ...

    async def resolve_thread(self, prefix: str) -> str:
        """Return the id of the caller's one thread whose id starts with `prefix`.

        ClientError 404 when none does, 409 (naming the candidates) when several do.
        """
        ...

    async def cancel_run(self, run_id: str) -> None:
        """Stop the caller's run `run_id`; returns once it has stopped."""
        ...

    async def health(self) -> dict[str, Any]:
        """Return the database state and each model tier's breaker."""
        ...

    async def list_tasks(self, filters: dict[str, Any]) -> dict[str, Any]:
        """Return `{"count", "tasks"}` for the filters of the list_tasks tool."""
        ...

    async def create_task(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Create a task and return it."""
        ...

    async def get_task(self, task_id: str) -> dict[str, Any]:
        """Return one task."""
        ...

    async def complete_task(self, task_id: str) -> dict[str, Any]:
        """Mark a task completed and return it."""
        ...

    async def delete_task(self, task_id: str) -> dict[str, Any]:
        """Delete a task and return `{"deleted": {"id", "title"}}`."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


@asynccontextmanager
async def open_client(
    url: str | None, api_key: str | None = None, settings: Settings | None = None
) -> AsyncIterator[AgentClient]:
    """Yield a client for the server at `url`, or for the local database when `url` is None."""
    client: AgentClient = (
        HttpClient(url, api_key) if url else LocalClient(settings or get_settings())
    )
    try:
        yield client
    finally:
        await client.close()


# What `GET /chat/threads/resolve` takes: the first 4 or more characters of a thread id.
ID_PREFIX = re.compile(r"[0-9a-f][0-9a-f-]{3,34}")


def is_id_prefix(value: str) -> bool:
    """Return whether `value` is a shortened thread id to resolve (not a whole id)."""
    return ID_PREFIX.fullmatch(value.strip().lower()) is not None


def _thread_json(info: ThreadInfo) -> dict[str, Any]:
    """A thread as `GET /chat/threads` shows it (server.api.chat.thread_json)."""
    waiting = info.interrupt if info.status == "interrupted" else None
    return {
        "thread_id": info.thread_id,
        "title": info.title,
        "status": info.status,
        "created_at": info.created_at,
        "updated_at": info.updated_at,
        "waiting_approval": None
        if not waiting
        else {k: waiting.get(k) for k in ("task_id", "title", "question")},
    }


def _view_messages(history: list[AnyMessage]) -> list[dict[str, Any]]:
    """Return messages in the shape `/chat/threads/{id}/messages` uses."""
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    shown: list[dict[str, Any]] = []
    for message in history:
        if isinstance(message, HumanMessage):
            shown.append({"role": "user", "content": message.text})
        elif isinstance(message, AIMessage):
            calls = [
                {"id": c["id"], "tool": c["name"], "arguments": c["args"]}
                for c in message.tool_calls
            ]
            shown.append({"role": "assistant", "content": message.text, "tool_calls": calls})
        elif isinstance(message, ToolMessage):
            shown.append(
                {"role": "tool", "content": message.text, "tool_call_id": message.tool_call_id}
            )
    return shown


class LocalClient:
    """The agent in this process, on the local database, acting as the local admin.

    The graph and its saver are opened on first use, so task commands open only the store
    (and never import the model stack).
    """

    where = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.context = Context()
        self._runs: RunManager | None = None
        self._store: TaskStore | None = None

    async def _engine(self) -> RunManager:
        if self._runs is None:
            from server.runs.engine import RunManager

            # The same engine as the server's: a turn here is a leased run in the data dir's
            # runs table, so a server on the same data dir finishes it if this process dies.
            self._runs = await RunManager.open(self.settings, serves_others=False)
        return self._runs

    async def _agent(self) -> AgentRunner:
        return (await self._engine()).runner

    async def _tasks(self) -> TaskStore:
        if self._runs is not None:
            return self._runs.runner.services.tasks
        if self._store is None:
            # Task commands need no model and no graph: open only the task store.
            self._store = await TaskStore.open(
                self.settings.tasks_db,
                busy_timeout_ms=self.settings.busy_timeout_ms,
                synchronous=self.settings.sqlite_synchronous,
                redactor=Redactor.from_settings(self.settings),
                database_url=self.settings.postgres_url,
            )
        return self._store

    async def stream_turn(
        self,
        *,
        message: str | None = None,
        thread_id: str | None = None,
        resume: dict[str, Any] | None = None,
    ) -> AsyncIterator[ChatEvent]:
        """Run one turn in-process and yield its events."""
        from server.runs.runner import TurnError

        runs = await self._engine()
        try:
            async for kind, data in runs.turn(
                context=self.context, message=message, thread_id=thread_id, resume=resume
            ):
                yield ChatEvent(kind, data)
        except TurnError as exc:
            raise ClientError(exc.message, exc.status) from None

    async def thread(self, thread_id: str) -> ThreadView:
        """Return a thread of the local user."""
        from server.runs.runner import TurnError

        runner = await self._agent()
        try:
            info = await runner.check_access(thread_id, self.context.user_id)
        except TurnError as exc:
            raise ClientError(exc.message, exc.status) from None
        return ThreadView(
            thread_id,
            info.status,
            info.interrupt if info.status == "interrupted" else None,
            _view_messages(await runner.history(thread_id)),
        )

    async def threads(self) -> list[dict[str, Any]]:
        """Return the local user's threads in the shape of `GET /chat/threads`."""
        runner = await self._agent()
        return [_thread_json(t) for t in await runner.threads.list(self.context.user_id)]

    async def resolve_thread(self, prefix: str) -> str:
        """Return the local user's one thread whose id starts with `prefix`, as the server does."""
        runner = await self._agent()
        try:
            return (await runner.threads.resolve(self.context.user_id, prefix)).thread_id
        except UnresolvedPrefix as exc:
            raise ClientError(str(exc), exc.status) from None

    async def cancel_run(self, run_id: str) -> None:
        """Stop a run of this process's engine (the run's own cancel, as the server's)."""
        await (await self._engine()).cancel(run_id)

    async def health(self) -> dict[str, Any]:
        """Return the local database state and the configured tiers."""
        runner = await self._agent()
        database = "ok" if await runner.services.tasks.ping() else "error"
        return {
            "status": "ok" if database == "ok" else "degraded",
            "database": database,
            "tiers": [
                {"name": t.name, "label": t.label, "breaker": t.breaker.state}
                for t in runner.services.tiers
            ],
        }

    async def _tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        try:
            return await call_task_tool(
                await self._tasks(), self.context, name, arguments, via="cli"
            )
        except TaskCallError as exc:
            raise ClientError(exc.message, exc.status) from None

    async def list_tasks(self, filters: dict[str, Any]) -> dict[str, Any]:
        """List tasks through the list_tasks tool."""
        result = await self._tool("list_tasks", filters)
        return {"count": result["count"], "tasks": result["tasks"]}

    async def create_task(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Create a task through the create_task tool."""
        task: dict[str, Any] = (await self._tool("create_task", fields))["task"]
        return task

    async def get_task(self, task_id: str) -> dict[str, Any]:
        """Read a task through the get_task tool."""
        task: dict[str, Any] = (await self._tool("get_task", {"task_id": task_id}))["task"]
        return task

    async def complete_task(self, task_id: str) -> dict[str, Any]:
        """Complete a task through the complete_task tool."""
        task: dict[str, Any] = (await self._tool("complete_task", {"task_id": task_id}))["task"]
        return task

    async def delete_task(self, task_id: str) -> dict[str, Any]:
        """Delete a task through the delete_task tool."""
        result = await self._tool("delete_task", {"task_id": task_id})
        return {"deleted": result["deleted"]}

    async def close(self) -> None:
        """Close the runner and the task store, whichever were opened."""
        if self._runs is not None:
            await self._runs.close()
        if self._store is not None:
            await self._store.close()


async def _sse_frames(response: httpx.Response) -> AsyncIterator[ServerSentEvent]:
    """The events of a `text/event-stream` body; pings (comments, no data) are skipped."""
    async for frame in EventSource(response).aiter_sse():
        if frame.data:
            yield frame


def _error_from(response: httpx.Response, url: str) -> ClientError:
    """Turn an HTTP error response into one sentence a user can act on."""
    try:
        detail = str(response.json().get("detail", ""))
    except (ValueError, AttributeError):
        detail = ""
    status = response.status_code
    retry_after = response.headers.get("Retry-After")
    if status == 401:
        message = (
            f"The server at {url} refused the API key (401): pass a valid key with "
            "--api-key or TASKAGENT_API_KEY."
        )
    elif status == 429:
        message = detail or "Rate limit reached."
        message += f" (429; retry after {retry_after} s)" if retry_after else " (429)"
    elif status >= 500:
        message = f"The server at {url} failed ({status}): {detail or 'see its log'}."
    else:
        message = f"{detail or response.reason_phrase} ({status})"
    return ClientError(message, status, retry_after)


class HttpClient:
    """A taskagent server over HTTP, authenticated with an API key."""

    def __init__(self, url: str, api_key: str | None = None) -> None:
        self.where = url.rstrip("/")
        headers = {"X-Api-Key": api_key} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=self.where,
            headers=headers,
            timeout=httpx.Timeout(REQUEST_TIMEOUT_S, read=STREAM_READ_TIMEOUT_S),
        )

    def _unreachable(self, exc: httpx.HTTPError) -> ClientError:
        if isinstance(exc, httpx.ConnectError):
            return ClientError(
                f"Cannot connect to {self.where}: is `taskagent serve` running there?"
            )
        if isinstance(exc, httpx.TimeoutException):
            return ClientError(f"The server at {self.where} did not answer in time.")
        return ClientError(f"The request to {self.where} failed: {exc}.")

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        if response.status_code >= 400:
            raise _error_from(response, self.where)
        try:
            return response.json()
        except ValueError:
            raise ClientError(
                f"{self.where}{path} did not answer with JSON: is it a taskagent server?"
            ) from None

    async def stream_turn(
        self,
        *,
        message: str | None = None,
        thread_id: str | None = None,
        resume: dict[str, Any] | None = None,
    ) -> AsyncIterator[ChatEvent]:
        """Run one turn with `POST /chat/stream`, rejoining the run if the stream breaks."""
        body: dict[str, Any] = {"thread_id": thread_id}
        body.update({"resume": resume} if resume is not None else {"message": message})
        # The key makes a repeated POST (after a dropped connection) return the same run.
        request = self._http.build_request(
            "POST", "/chat/stream", json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
        )
        last_id, location = "", None
        for attempt in range(STREAM_RETRIES + 1):
            try:
                response = await self._http.send(request, stream=True)
            except httpx.ConnectError as exc:
                raise self._unreachable(exc) from None
            except httpx.HTTPError as exc:
                # The request may have arrived: send it again (the POST's key keeps it one run).
                if attempt == STREAM_RETRIES:
                    raise self._unreachable(exc) from None
                continue
            try:
                if response.status_code >= 400:
                    await response.aread()
                    raise _error_from(response, self.where)
                location = response.headers.get("Location", location)
                async for frame in _sse_frames(response):
                    last_id = frame.id or last_id
                    event = ChatEvent(frame.event, json.loads(frame.data))
                    if event.kind == "error":
                        status = 409 if event.data.get("error") == "BadRequest" else 500
                        raise ClientError(str(event.data.get("message", "The run failed.")), status)
                    yield event
                    if event.kind == "done":
                        return
                raise httpx.RemoteProtocolError("the stream ended before the run did")
            except httpx.HTTPError as exc:
                if attempt == STREAM_RETRIES or location is None:
                    raise self._unreachable(exc) from None
                request = self._http.build_request(
                    "GET", location, headers={"Last-Event-ID": last_id or "0"}
                )
            finally:
                await response.aclose()

    async def thread(self, thread_id: str) -> ThreadView:
        """Return a thread with `GET /chat/threads/{id}/messages`."""
        data = await self._request("GET", f"/chat/threads/{quote(thread_id, safe='')}/messages")
        return ThreadView(
            data["thread_id"], data["status"], data.get("interrupt"), data["messages"]
        )

    async def threads(self) -> list[dict[str, Any]]:
        """Return the caller's threads with `GET /chat/threads`."""
        threads: list[dict[str, Any]] = await self._request("GET", "/chat/threads")
        return threads

    async def resolve_thread(self, prefix: str) -> str:
        """Return the thread `GET /chat/threads/resolve?prefix=` names."""
        found = await self._request("GET", "/chat/threads/resolve", params={"prefix": prefix})
        return str(found["thread_id"])

    async def cancel_run(self, run_id: str) -> None:
        """Stop a run with `POST /chat/runs/{id}/cancel`."""
        await self._request("POST", f"/chat/runs/{quote(run_id, safe='')}/cancel")

    async def health(self) -> dict[str, Any]:
        """Return `GET /health`."""
        health: dict[str, Any] = await self._request("GET", "/health")
        return health

    async def list_tasks(self, filters: dict[str, Any]) -> dict[str, Any]:
        """Return `GET /tasks` with the filters as query parameters."""
        params = {k: str(v).lower() if isinstance(v, bool) else v for k, v in filters.items()}
        result: dict[str, Any] = await self._request("GET", "/tasks", params=params)
        return result

    async def create_task(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Create a task with `POST /tasks`."""
        task: dict[str, Any] = await self._request("POST", "/tasks", json=fields)
        return task

    async def get_task(self, task_id: str) -> dict[str, Any]:
        """Return `GET /tasks/{id}`."""
        task: dict[str, Any] = await self._request("GET", f"/tasks/{quote(task_id, safe='')}")
        return task

    async def complete_task(self, task_id: str) -> dict[str, Any]:
        """Complete a task with `POST /tasks/{id}/complete`."""
        path = f"/tasks/{quote(task_id, safe='')}/complete"
        task: dict[str, Any] = await self._request("POST", path)
        return task

    async def delete_task(self, task_id: str) -> dict[str, Any]:
        """Delete a task with `DELETE /tasks/{id}`."""
        result: dict[str, Any] = await self._request("DELETE", f"/tasks/{quote(task_id, safe='')}")
        return result

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()
