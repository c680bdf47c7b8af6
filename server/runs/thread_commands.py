"""The thread-centric protocol's commands: start a run, answer or add input, read state, fork.

`POST /threads/{id}/commands` carries one command `{id, method, params}` and answers
`{type: "success", id, result, meta}` or `{type: "error", id, error, message}`, as
langgraph-api does. Runs are created through the one engine (`RunManager.create`, kind
`thread`), so admission, leases, the durable event log, ownership, rate limits and takeover
apply; their events are read on `POST /threads/{id}/stream/events`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, cast, get_args

from langchain_core.runnables import RunnableConfig
from pydantic_core import to_jsonable_python

from graph.context import Context
from server.runs.client_input import RefusedInput, check_run_request
from server.runs.engine import RunManager
from server.runs.graphs import ServedGraph
from server.runs.runner import TurnError
from server.runs.store import MultitaskStrategy
from server.runs.thread_stream import KIND, head, supported_channel
from server.runs.threads import ThreadInfo

Result = dict[str, Any]


class CommandError(Exception):
    """A command refused with a protocol error code (`invalid_argument`, `no_such_...`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def error(command_id: Any, code: str, message: str) -> dict[str, Any]:
    """A protocol error response."""
    return {"type": "error", "id": command_id, "error": code, "message": message}


class ThreadCommands:
    """The commands of one thread for one user."""

    def __init__(self, runs: RunManager, context: Context, thread_id: str) -> None:
        self.runs = runs
        self.context = context
        self.thread_id = thread_id
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[Result]]] = {
            "run.start": self.run_start,
            "input.respond": self.input_respond,
            "input.inject": self.input_inject,
            "state.get": self.state_get,
            "state.listCheckpoints": self.list_checkpoints,
            "state.fork": self.fork,
            "agent.getTree": self.agent_tree,
            "subscription.subscribe": self.subscribe,
            "subscription.unsubscribe": self.unsubscribe,
            "subscription.reconnect": self.reconnect,
        }

    async def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        """Answer one command; TurnError (404, 429...) escapes for the HTTP layer to answer."""
        command_id, method = command["id"], command["method"]
        handler = self._handlers.get(method)
        if handler is None:
            return error(command_id, "unknown_command", f"Unknown protocol command: {method}")
        params = command.get("params")
        try:
            result = await handler(params if isinstance(params, dict) else {})
        except CommandError as exc:
            return error(command_id, exc.code, exc.message)
        except TurnError as exc:
            if exc.status in (401, 403, 404, 429):
                raise
            # As langgraph-api wraps a refused run: the HTTP status leads the message.
            return error(command_id, "unknown_error", f"{exc.status}: {exc.message}")
        meta = {"applied_through_seq": await head(self.runs, self.thread_id)}
        return {"type": "success", "id": command_id, "result": result, "meta": meta}

    # --- runs ----------------------------------------------------------------------------

    async def run_start(self, params: dict[str, Any]) -> Result:
        """Start a run of the assistant on the thread (creating the thread if it is new)."""
        assistant_id = params.get("assistant_id")
        if not isinstance(assistant_id, str) or not assistant_id:
            raise CommandError("invalid_argument", "run.start requires an assistant_id.")
        try:
            assistant = await self.runs.assistants.resolve(assistant_id, self.context.user_id)
        except TurnError as exc:
            raise CommandError("unknown_error", f"{exc.status}: {exc.message}") from None
        served = self.runs.runner.graphs.get(assistant.graph_id)
        graph_input = params.get("input")
        if graph_input is not None and not isinstance(graph_input, dict):
            raise CommandError("invalid_argument", "run.start input must be an object or null.")
        if await self.runs.runner.threads.get(self.thread_id) is not None:
            await self._thread()  # another user's thread is not found, whatever the input
        self._check({"input": graph_input, "command": None}, served)
        checkpoint_id = _checkpoint_id(params.get("config"))
        info = await self._thread(create_for=served)
        if info.metadata.get("graph_id", served.graph_id) != served.graph_id:
            raise CommandError(
                "invalid_argument",
                f"Thread {self.thread_id} runs graph {info.metadata['graph_id']!r},"
                f" not {served.graph_id!r}.",
            )
        if checkpoint_id is not None:
            await self._branch(served, checkpoint_id)
        run_id = await self._create(
            served,
            {
                "input": graph_input,
                "command": None,
                "config": assistant.config,
                "context": {} if served.task_agent else assistant.context,
            },
            strategy=_strategy(params),
            metadata=params.get("metadata"),
        )
        return {"run_id": run_id}

    async def input_respond(self, params: dict[str, Any]) -> Result:
        """Answer pending interrupts by id; the task agent's approval is bound to its call."""
        entries = _respond_entries(params)
        if params.get("update") is not None or params.get("goto") is not None:
            raise CommandError("not_supported", "input.respond supports no update or goto.")
        info = await self._thread()
        served = self.runs.runner.graph_of(info)
        state = await served.graph.aget_state(self._config())
        pending = {item.id: item.value for item in state.interrupts}
        for interrupt_id, namespace, _ in entries:
            if interrupt_id not in pending or namespace:
                raise CommandError(
                    "no_such_interrupt", f"Unknown or already-consumed interrupt: {interrupt_id}"
                )
        if len(entries) == 1:
            interrupt_id, _, response = entries[0]
            resume = _bound(response, pending[interrupt_id])
        else:
            resume = {interrupt_id: response for interrupt_id, _, response in entries}
        await self._create(
            served, {"input": None, "command": {"resume": resume}}, metadata=params.get("metadata")
        )
        return {}

    async def input_inject(self, params: dict[str, Any]) -> Result:
        """Add a user message to the thread: a run queued after the one in progress."""
        message = params.get("message")
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise CommandError("invalid_argument", "input.inject requires message.content.")
        if message.get("role", "user") != "user":
            raise CommandError("invalid_argument", "input.inject accepts user messages only.")
        if params.get("namespace"):
            raise CommandError("no_such_namespace", "This server streams the root namespace only.")
        info = await self._thread()
        served = self.runs.runner.graph_of(info)
        graph_input = {"messages": [{"role": "user", "content": message["content"]}]}
        await self._create(served, {"input": graph_input, "command": None})
        return {}

    # --- state ---------------------------------------------------------------------------

    async def state_get(self, params: dict[str, Any]) -> Result:
        """The thread's current values (only `keys`, when given) and its checkpoint."""
        if params.get("namespace"):
            raise CommandError("no_such_namespace", "This server streams the root namespace only.")
        served = self.runs.runner.graph_of(await self._thread())
        state = await served.graph.aget_state(self._config())
        values = dict(state.values)
        keys = params.get("keys")
        if isinstance(keys, list):
            values = {k: v for k, v in values.items() if k in keys}
        result: Result = {"values": _jsonable(values)}
        checkpoint_id = (state.config or {}).get("configurable", {}).get("checkpoint_id")
        if checkpoint_id:
            result["checkpoint"] = {"id": checkpoint_id, "ns": ""}
        return result

    async def list_checkpoints(self, params: dict[str, Any]) -> Result:
        """The thread's checkpoints, newest first: id, timestamp, step, node_name, metadata."""
        if params.get("namespace"):
            raise CommandError("no_such_namespace", "This server streams the root namespace only.")
        limit = params.get("limit", 10)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
            raise CommandError("invalid_argument", "limit must be an integer from 1 to 1000.")
        before = params.get("before")
        served = self.runs.runner.graph_of(await self._thread())
        cursor = None if not isinstance(before, str) else self._config(before)
        checkpoints = []
        async for snapshot in served.graph.aget_state_history(
            self._config(), limit=limit, before=cursor
        ):
            metadata = dict(snapshot.metadata or {})
            summary: dict[str, Any] = {
                "id": snapshot.config["configurable"]["checkpoint_id"],
                "timestamp": snapshot.created_at or "",
                "step": metadata.get("step", -1),
                "metadata": _jsonable(metadata),
            }
            if snapshot.tasks:
                summary["node_name"] = snapshot.tasks[0].name
            checkpoints.append(summary)
        return {"checkpoints": checkpoints}

    async def fork(self, params: dict[str, Any]) -> Result:
        """Branch the thread from a past checkpoint and run `input` from there."""
        checkpoint_id = params.get("checkpoint_id")
        if not isinstance(checkpoint_id, str) or not checkpoint_id:
            raise CommandError("invalid_argument", "state.fork requires a checkpoint_id.")
        graph_input = params.get("input")
        if graph_input is not None and not isinstance(graph_input, dict):
            raise CommandError("invalid_argument", "state.fork input must be an object or null.")
        served = self.runs.runner.graph_of(await self._thread())
        await self._branch(served, checkpoint_id)
        run_id = await self._create(served, {"input": graph_input, "command": None})
        return {"run_id": run_id, "thread_id": self.thread_id}

    # --- subscriptions and the agent tree --------------------------------------------------

    async def subscribe(self, params: dict[str, Any]) -> Result:
        """Over HTTP a connection is the subscription: accepted, with nothing to replay."""
        _channels(params, "subscription.subscribe")
        return {"subscription_id": str(uuid.uuid4()), "replayed_events": 0}

    async def unsubscribe(self, params: dict[str, Any]) -> Result:
        """Over HTTP there is no server-side subscription to remove."""
        subscription_id = params.get("subscription_id")
        if not isinstance(subscription_id, str):
            raise CommandError(
                "invalid_argument", "subscription.unsubscribe requires a subscription_id."
            )
        raise CommandError("no_such_subscription", f"Unknown subscription: {subscription_id}")

    async def reconnect(self, params: dict[str, Any]) -> Result:
        """Over HTTP a client reconnects by opening the event stream with `since`."""
        _channels(params, "subscription.reconnect")
        raise CommandError("no_such_run", "No active run is bound to this thread.")

    async def agent_tree(self, params: dict[str, Any]) -> Result:
        """The root namespace, its graph and where the thread stands."""
        info = await self._thread()
        served = self.runs.runner.graph_of(info)
        live = await self.runs.active_runs(self.thread_id)
        status = "running" if live else {"interrupted": "interrupted"}.get(info.status, "completed")
        return {"tree": {"namespace": [], "status": status, "graph_name": served.graph_id}}

    # --- helpers -------------------------------------------------------------------------

    def _config(self, checkpoint_id: str | None = None) -> RunnableConfig:
        configurable: dict[str, Any] = {"thread_id": self.thread_id}
        if checkpoint_id is not None:
            configurable.update(checkpoint_ns="", checkpoint_id=checkpoint_id)
        return {"configurable": configurable}

    async def _thread(self, create_for: ServedGraph | None = None) -> ThreadInfo:
        """The user's thread; with `create_for`, created for that graph when it is new."""
        if create_for is not None:
            metadata = {"graph_id": create_for.graph_id, "assistant_id": create_for.assistant_id}
            await self.runs.create_thread(self.context, self.thread_id, metadata)
        return await self.runs.runner.check_access(self.thread_id, self.context.user_id)

    async def _branch(self, served: ServedGraph, checkpoint_id: str) -> None:
        """Make a past checkpoint the thread's head (LangGraph's `__copy__`), nothing running."""
        _valid_checkpoint_id(checkpoint_id)
        snapshot = await served.graph.aget_state(self._config(checkpoint_id))
        if not snapshot.created_at:
            raise CommandError("no_such_checkpoint", f"Checkpoint {checkpoint_id} not found.")
        if await self.runs.active_runs(self.thread_id):
            raise CommandError(
                "invalid_argument", f"Thread {self.thread_id} has a run in progress; fork after it."
            )
        await served.graph.aupdate_state(snapshot.config, None, as_node="__copy__")
        await self.runs.runner.settle(self.thread_id)

    def _check(self, payload: dict[str, Any], served: ServedGraph) -> None:
        """Refuse input a client may not send to the task agent, before anything is created."""
        if payload["input"] is None and payload["command"] is None or not served.task_agent:
            return  # nothing new: the run continues the thread from its checkpoint
        try:
            check_run_request(payload["input"], payload["command"], self.runs.settings)
        except RefusedInput as exc:
            raise CommandError("invalid_argument", str(exc)) from None

    async def _create(
        self,
        served: ServedGraph,
        payload: dict[str, Any],
        *,
        strategy: MultitaskStrategy = "enqueue",
        metadata: Any = None,
    ) -> str:
        self._check(payload, served)
        run = await self.runs.create(
            context=self.context,
            thread_id=self.thread_id,
            kind=KIND,
            payload={**payload, "graph_id": served.graph_id},
            strategy=strategy,
            metadata=metadata if isinstance(metadata, dict) else {},
            assistant_id=served.assistant_id,
        )
        return run.run_id


def _strategy(params: dict[str, Any]) -> MultitaskStrategy:
    """The SDK's `multitaskStrategy` (or `multitask_strategy`); `enqueue` when absent."""
    for key in ("multitaskStrategy", "multitask_strategy"):
        value = params.get(key)
        if value in get_args(MultitaskStrategy):
            return cast(MultitaskStrategy, value)
    return "enqueue"


def _checkpoint_id(config: Any) -> str | None:
    configurable = config.get("configurable") if isinstance(config, dict) else None
    value = configurable.get("checkpoint_id") if isinstance(configurable, dict) else None
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise CommandError(
            "invalid_argument", "config.configurable.checkpoint_id must be a non-empty string."
        )
    return _valid_checkpoint_id(value)


def _valid_checkpoint_id(value: str) -> str:
    try:
        uuid.UUID(value)
    except ValueError:
        raise CommandError(
            "invalid_argument", f"Invalid config.configurable.checkpoint_id: {value!r}."
        ) from None
    return value


def _respond_entries(params: dict[str, Any]) -> list[tuple[str, list[str], Any]]:
    raw = params.get("responses")
    if raw is None:
        raw = [params]
    elif not isinstance(raw, list) or not raw:
        raise CommandError("invalid_argument", "input.respond requires at least one response.")
    entries = []
    for entry in raw:
        if not isinstance(entry, dict) or not isinstance(entry.get("interrupt_id"), str):
            raise CommandError("invalid_argument", "input.respond requires an interrupt_id.")
        namespace = entry.get("namespace", [])
        if not isinstance(namespace, list) or not all(isinstance(s, str) for s in namespace):
            raise CommandError(
                "invalid_argument", "input.respond requires namespace to be a list of strings."
            )
        entries.append((entry["interrupt_id"], namespace, entry.get("response")))
    return entries


def _bound(response: Any, question: Any) -> Any:
    """An answer to an approval names the call it answers, so it can answer nothing else."""
    if not isinstance(response, dict) or not isinstance(question, dict):
        return response
    bound = dict(response)
    for key in ("tool_call_id", "approval_id"):
        if question.get(key) is not None:
            bound.setdefault(key, question[key])
    return bound


def _channels(params: dict[str, Any], method: str) -> None:
    channels = params.get("channels")
    if not isinstance(channels, list) or not channels:
        raise CommandError("invalid_argument", f"{method} requires a non-empty channels array.")
    if not all(supported_channel(c) for c in channels):
        raise CommandError("invalid_argument", f"{method} received an unsupported channel.")


def _jsonable(value: Any) -> Any:
    return to_jsonable_python(value, fallback=str)
