"""Request and response models of the HTTP API (they become the OpenAPI spec)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tools.text import printable

MAX_THREAD_TITLE_CHARS = 120


class ChatRequest(BaseModel):
    """One user turn, or the answer to a pending approval."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"message": "Create a high-priority task for the quarterly review due next Friday"},
                {"thread_id": "6f1c…", "resume": {"approved": True}},
            ]
        },
    )

    message: str | None = Field(default=None, description="What the user says.")
    thread_id: str | None = Field(
        default=None, max_length=200, description="Continue this thread; omit to start a new one."
    )
    resume: dict[str, Any] | None = Field(
        default=None,
        description='Answer to the pending approval, e.g. {"approved": true, "tool_call_id":'
        ' "call_abc"}; the tool_call_id (from the interrupt) makes sure it answers that call.',
    )

    @model_validator(mode="after")
    def _one_of(self) -> ChatRequest:
        if self.message is not None and self.resume is not None:
            raise ValueError("Send either message or resume, not both.")
        if self.message is None and self.resume is None and self.thread_id is None:
            raise ValueError("Send a message.")
        if self.message is not None and not self.message.strip():
            raise ValueError("message must not be empty.")
        if self.resume is not None and self.thread_id is None:
            raise ValueError("resume needs the thread_id of the waiting thread.")
        return self


class ToolCallRecord(BaseModel):
    """A tool the agent called during the turn and what it returned."""

    tool: str
    arguments: dict[str, Any]
    result: Any = None


class ChatResponse(BaseModel):
    """The agent's answer to one turn."""

    message: str = Field(description="The answer, or the approval question while the run waits.")
    tool_calls: list[ToolCallRecord]
    model_used: str = Field(description="Which model tier produced the answer.")
    fallback_used: bool = Field(description="True when a tier failed and a later one answered.")
    latency_ms: float
    thread_id: str
    run_id: str
    interrupt: dict[str, Any] | None = Field(
        default=None, description="The approval the run waits for, if it paused."
    )
    usage: dict[str, Any] = Field(
        default_factory=dict,
        description="Tokens and cost of this turn's last model call, totals and budget limits.",
    )


class TierHealth(BaseModel):
    """One model tier's configuration and circuit-breaker state."""

    name: str
    label: str
    breaker: str
    status: str = Field(
        default="unchecked",
        description="ok; unreachable: its server did not answer the last probe (every 30 s);"
        " unchecked: a hosted API, not probed.",
    )
    reason: str | None = Field(default=None, description="Why the tier's server is unreachable.")


class HealthResponse(BaseModel):
    """Liveness plus what the service depends on."""

    status: str
    database: str
    tiers: list[TierHealth]


class ErrorResponse(BaseModel):
    """A client error explained."""

    detail: str


class ThreadTitleRequest(BaseModel):
    """A thread's new title, as the user typed it."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(description="1 to 120 characters; spaces around it are dropped.")

    @field_validator("title")
    @classmethod
    def _fits(cls, value: str) -> str:
        title = " ".join(printable(value).split())
        if not 1 <= len(title) <= MAX_THREAD_TITLE_CHARS:
            raise ValueError(
                f"A thread title needs 1 to {MAX_THREAD_TITLE_CHARS} characters"
                f" (this one has {len(title)})."
            )
        return title


class WaitingApproval(BaseModel):
    """The approval a thread waits for."""

    task_id: str | None = Field(description="The task the question is about.")
    title: str | None = Field(description="The task's title as the question shows it.")
    question: str | None = Field(description='E.g. Delete TASK-0001 "Buy milk"?')


class ChatThread(BaseModel):
    """A thread as the chat page and the terminal list it."""

    thread_id: str
    title: str = Field(description="Summarised after the first turn, or as the user set it.")
    status: str = Field(description="idle, busy, interrupted (an approval waits) or error.")
    created_at: str = Field(description="ISO-8601, UTC with its offset.")
    updated_at: str = Field(description="The latest activity, ISO-8601, UTC with its offset.")
    waiting_approval: WaitingApproval | None


class StoppedRun(BaseModel):
    """A chat run after a stop was asked."""

    run_id: str
    thread_id: str
    status: str = Field(description="The run's status now: interrupted when it was stopped.")
    cancelled: bool = Field(description="False when the run had already ended.")
