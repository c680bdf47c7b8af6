"""The MCP server's tools: the task tools, ask_agent and answer_approval.

Each call acts for the caller's principal and goes through the same role matrix, rate
limits, budgets and audit trail as the agent (`server/mcp/server.py` serves it).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import Context as ToolContext
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from graph.context import Context
from graph.settings import Settings
from server.observability.logs import bind
from server.runs.task_calls import TaskCallError, call_task_tool
from server.security.auth import KeyRing, Principal, local_principal, presented_key
from server.security.ratelimit import (
    AuthFailureLimiter,
    Limiters,
    RateLimiter,
    refusal,
    refusal_record,
)
from tools.audit import summarize
from tools.schemas import DESTRUCTIVE_TOOLS, MUTATING_TOOLS, TOOL_ARGS

if TYPE_CHECKING:
    from server.runs.engine import RunManager
    from server.runs.runner import AgentRunner, TurnResult

VIA = "mcp"

INSTRUCTIONS = """Task management for one user. Use the task tools (list_tasks, create_task,
update_task, complete_task, delete_task, get_task, task_summary) for direct changes, or
ask_agent to let the task agent handle a request in plain English on a conversation thread.
When ask_agent reports a pending approval, ask the user and answer with answer_approval."""

TITLES = {
    "create_task": "Create a task",
    "list_tasks": "List or search tasks",
    "get_task": "Show a task",
    "update_task": "Update a task",
    "complete_task": "Complete a task",
    "delete_task": "Delete a task",
    "task_summary": "Task summary",
}

DESCRIPTIONS = {
    # The agent asks through its own interrupt; an MCP client asks the user before any call.
    "delete_task": "Delete a task permanently. This cannot be undone.",
}


# --- replies -------------------------------------------------------------------------------


class ToolCallSummary(BaseModel):
    """One tool the agent called during the turn."""

    tool: str = Field(description="Tool name, e.g. create_task.")
    arguments: dict[str, Any] = Field(description="Arguments the agent passed.")
    ok: bool = Field(description="Whether the call succeeded.")
    summary: str = Field(description="One line on what it did, or why it failed.")


class PendingApproval(BaseModel):
    """A destructive step the agent will only take once the user approves it."""

    question: str = Field(description="What to ask the user, e.g. 'Delete TASK-0003 \"x\"?'.")
    tool: str = Field(description="The tool waiting for approval.")
    task_id: str | None = Field(default=None, description="The task concerned.")
    tool_call_id: str | None = Field(
        default=None, description="Pass it to answer_approval to answer this very question."
    )


class AgentReply(BaseModel):
    """The agent's answer to one turn."""

    answer: str = Field(description="The agent's reply (the approval question when waiting).")
    thread_id: str = Field(description="Pass it to ask_agent again to continue this thread.")
    model_used: str = Field(description="Which model tier produced the answer.")
    fallback_used: bool = Field(description="Whether an earlier tier failed and a later one did.")
    tool_calls: list[ToolCallSummary] = Field(description="Tools the agent called this turn.")
    pending_approval: PendingApproval | None = Field(
        default=None, description="Set when the turn stopped to ask the user for approval."
    )
    next_step: str | None = Field(default=None, description="What the caller should do next.")


def agent_reply(result: TurnResult) -> AgentReply:
    """Turn a finished (or interrupted) turn into the reply MCP clients see."""
    calls = []
    for record in result.tool_calls:
        outcome = record.get("result")
        ok = isinstance(outcome, dict) and bool(outcome.get("ok"))
        if isinstance(outcome, dict):
            summary = summarize(outcome)
        else:
            summary = "waiting for approval" if result.interrupt else "not run"
        calls.append(
            ToolCallSummary(
                tool=record["tool"], arguments=record["arguments"], ok=ok, summary=summary
            )
        )
    reply = AgentReply(
        answer=result.message,
        thread_id=result.thread_id,
        model_used=result.model_used,
        fallback_used=result.fallback_used,
        tool_calls=calls,
    )
    interrupt = result.interrupt
    if interrupt:
        question = str(interrupt.get("question", "Approve?"))
        reply.pending_approval = PendingApproval(
            question=question,
            tool=str(interrupt.get("tool", "")),
            task_id=interrupt.get("task_id"),
            tool_call_id=interrupt.get("tool_call_id"),
        )
        reply.next_step = (
            f"Ask the user: {question} Then call answer_approval with"
            f' thread_id="{result.thread_id}",'
            f' tool_call_id="{interrupt.get("tool_call_id", "")}" and approved=true or false.'
        )
    return reply


# --- the server ----------------------------------------------------------------------------


@dataclass
class TaskAgentMCP:
    """The MCP face of one taskagent process: its runner, limiter and who it acts for.

    `principal` is fixed for stdio; None means each HTTP request authenticates itself.
    """

    settings: Settings
    principal: Principal | None
    keyring: KeyRing
    limiter: RateLimiter = field(init=False)
    auth_failures: AuthFailureLimiter = field(init=False)
    _runs: RunManager | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        # In memory until the lifespan opens the replicas' shared ones (DATABASE_URL).
        self.limiter = RateLimiter(self.settings.rate_limit_rpm, self.settings.rate_limit_tpm)
        self.auth_failures = AuthFailureLimiter(self.settings.auth_failures_per_minute)

    @property
    def runs(self) -> RunManager:
        """The open run engine (only between the server's start and stop)."""
        if self._runs is None:
            raise ToolError("The server is still starting; try again in a moment.")
        return self._runs

    @property
    def runner(self) -> AgentRunner:
        """The graph and stores the engine runs on."""
        return self.runs.runner

    async def audit_login_failed(self, path: str, client: str) -> None:
        """Audit a request refused for a missing or wrong key (once the store is open)."""
        if self._runs is not None:
            await self._runs.runner.services.tasks.login_failed(path, client)

    @asynccontextmanager
    async def lifespan(self, _: MCPServer[Any]) -> AsyncIterator[None]:
        """Open the run engine (databases, graph, leases) for the server's lifetime."""
        from server.runs.engine import RunManager

        limiters = await Limiters.open(self.settings)
        try:
            self._runs = await RunManager.open(
                self.settings, limiters.requests, serves_others=False
            )
        except BaseException:
            await limiters.close()
            raise
        self.limiter, self.auth_failures = limiters.requests, limiters.auth_failures
        try:
            yield
        finally:
            runs, self._runs = self._runs, None
            await runs.close()
            await limiters.close()

    def build(self) -> MCPServer[Any]:
        """Return the MCP server with the task tools, ask_agent and answer_approval."""
        server: MCPServer[Any] = MCPServer(
            "taskagent",
            title="taskagent",
            instructions=INSTRUCTIONS,
            tools=[self._task_tool(name) for name in TOOL_ARGS],
            lifespan=self.lifespan,
            log_level=_log_level(self.settings),
        )
        server.add_tool(
            self.ask_agent,
            title="Ask the task agent",
            annotations=ToolAnnotations(destructive_hint=False, open_world_hint=False),
        )
        server.add_tool(
            self.answer_approval,
            title="Answer the agent's approval question",
            annotations=ToolAnnotations(destructive_hint=True, open_world_hint=False),
        )
        return server

    # --- identity and limits ---------------------------------------------------------------

    async def _caller(self, ctx: ToolContext[Any, Any], tool: str) -> Principal:
        """Return who is calling (or refuse), counted against their rate limit."""
        principal = self.principal
        if principal is None:
            headers = ctx.headers or {}
            presented = presented_key(headers.get("x-api-key"), headers.get("authorization"))
            principal = (
                self.keyring.authenticate(presented) if self.keyring.enabled else local_principal()
            )
            if principal is None:
                # The HTTP gate refuses these already; this only guards a bypass of it.
                raise ToolError("Missing or invalid API key.")
        retry_after = await self.limiter.admit(principal.user_id)
        if retry_after is not None:
            await self.runner.services.tasks.audit(
                refusal_record(principal.user_id, principal.role, retry_after, tool=tool, via=VIA)
            )
            raise ToolError(refusal(principal.user_id, retry_after))
        return principal

    def _context(self, principal: Principal, thread_id: str | None = None) -> Context:
        """Return the run context for one call, and bind its ids for the log lines it causes."""
        request_id = f"mcp-{uuid.uuid4()}"
        bind(request_id=request_id, user=principal.user_id, thread_id=thread_id)
        return Context(user_id=principal.user_id, role=principal.role, request_id=request_id)

    # --- the task tools --------------------------------------------------------------------

    def _task_tool(self, name: str) -> Tool:
        """Return the MCP tool for task tool `name`: its own argument model is the schema."""
        model = TOOL_ARGS[name]
        # The SDK validates against this model, so clients get pydantic's message for bad
        # arguments; only the fields the caller gave travel on, as they do for the agent.
        arguments = type(name, (model, _GivenFieldsOnly), {"__module__": __name__})
        schema = model.model_json_schema()
        schema.pop("title", None)
        schema.pop("description", None)
        readonly = name not in MUTATING_TOOLS

        async def call(ctx: ToolContext[Any, Any], **given: Any) -> CallToolResult:
            return await self.call_task_tool(ctx, name, given)

        return Tool(
            fn=call,
            name=name,
            title=TITLES.get(name),
            description=DESCRIPTIONS.get(name, (model.__doc__ or name).strip()),
            parameters=schema,
            fn_metadata=FuncMetadata(arg_model=arguments),
            is_async=True,
            context_kwarg="ctx",
            annotations=ToolAnnotations(
                read_only_hint=readonly,
                destructive_hint=None if readonly else name in DESTRUCTIVE_TOOLS,
                idempotent_hint=readonly or name != "create_task",
                open_world_hint=False,
            ),
        )

    async def call_task_tool(
        self, ctx: ToolContext[Any, Any], name: str, given: dict[str, Any]
    ) -> CallToolResult:
        """Run one task tool for the caller, authorized and audited like an agent's call."""
        principal = await self._caller(ctx, name)
        try:
            result = await call_task_tool(
                self.runner.services.tasks, self._context(principal), name, given, via=VIA
            )
        except TaskCallError as exc:
            raise ToolError(exc.message) from None
        return CallToolResult(
            content=[TextContent(type="text", text=json.dumps(result, ensure_ascii=False))],
            structured_content=result,
        )

    # --- the agent -------------------------------------------------------------------------

    async def ask_agent(
        self,
        message: Annotated[
            str,
            Field(
                min_length=1,
                description="What to ask, in plain English, e.g. 'what is overdue?'.",
            ),
        ],
        ctx: ToolContext[Any, Any],
        thread_id: Annotated[
            str | None,
            Field(description="Continue this conversation (from an earlier reply); omit to start."),
        ] = None,
    ) -> AgentReply:
        """Ask the task agent: it reads and changes your tasks through its tools and answers.

        Returns the answer, the thread id to continue the conversation with, the tools it
        called and the model that answered. Deleting a task stops the turn with a pending
        approval question: ask the user, then call answer_approval.
        """
        limit = self.settings.max_message_chars
        if len(message) > limit:
            raise ToolError(f"message has {len(message)} characters; the limit is {limit}.")
        principal = await self._caller(ctx, "ask_agent")
        return await self._turn(principal, thread_id=thread_id, message=message)

    async def answer_approval(
        self,
        thread_id: Annotated[str, Field(description="The thread waiting for approval.")],
        approved: Annotated[bool, Field(description="true to go ahead, false to refuse.")],
        ctx: ToolContext[Any, Any],
        tool_call_id: Annotated[
            str | None,
            Field(description="pending_approval.tool_call_id: the question this answers."),
        ] = None,
    ) -> AgentReply:
        """Answer the approval question a thread is waiting on, and let the agent finish."""
        principal = await self._caller(ctx, "answer_approval")
        answer: dict[str, Any] = {"approved": approved}
        if tool_call_id is not None:
            answer["tool_call_id"] = tool_call_id
        return await self._turn(principal, thread_id=thread_id, resume=answer)

    async def _turn(
        self,
        principal: Principal,
        *,
        thread_id: str | None,
        message: str | None = None,
        resume: dict[str, Any] | None = None,
    ) -> AgentReply:
        from server.runs.runner import TurnError, TurnResult

        done: dict[str, Any] | None = None
        try:
            # The engine stops a turn at the time-out with an answer saying what it did, and
            # charges its tokens to the caller however it ended.
            async for kind, data in self.runs.turn(
                context=self._context(principal, thread_id),
                message=message,
                thread_id=thread_id,
                resume=resume,
            ):
                if kind == "done":
                    done = data
        except TurnError as exc:
            raise ToolError(exc.message) from None
        if done is None:
            raise ToolError("The turn was cancelled before it answered; ask again to continue.")
        result = TurnResult(**done)
        if result.model_used == "budget" and not result.tool_calls:
            # Refused before doing anything; a turn cut short mid-way reports what it did.
            raise ToolError(f"{result.message} {_budget_retry(result.message)}")
        return agent_reply(result)


class _GivenFieldsOnly(ArgModelBase):
    """Hands the tool only the arguments the caller actually gave."""

    def model_dump_one_level(self) -> dict[str, Any]:
        """Return the fields set by the caller, one level deep."""
        values = super().model_dump_one_level()
        return {name: value for name, value in values.items() if name in self.model_fields_set}


def _budget_retry(refusal: str) -> str:
    """Say when a budget refusal stops applying (budget days are UTC dates)."""
    if "this conversation" in refusal:
        return "Start a new conversation (omit thread_id) to go on."
    return "Daily budgets start afresh at midnight UTC."


def _log_level(settings: Settings) -> Any:
    level = settings.log_level.upper()
    return level if level in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"} else "INFO"


__all__ = ["AgentReply", "TaskAgentMCP"]
