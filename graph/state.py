"""The graph's typed state: the conversation plus per-turn bookkeeping."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from langchain_core.messages import AnyMessage
from langgraph.channels import DeltaChannel
from langgraph.graph.message import _messages_delta_reducer
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

# A DeltaChannel stores each message once, as the write that produced it, instead of
# re-serialising the whole list into every checkpoint; snapshots bound replay depth.
Messages = Annotated[list[AnyMessage], DeltaChannel(_messages_delta_reducer, snapshot_frequency=40)]


class GuardVerdict(BaseModel):
    """The input guard's decision about the latest user message."""

    allowed: bool
    reason: str = ""
    flags: list[str] = Field(default_factory=list)


class InputState(TypedDict):
    """What a caller sends: new messages for the thread."""

    messages: Messages


class State(InputState, total=False):
    """Everything the graph tracks; fields other than `messages` reset every turn."""

    verdict: GuardVerdict
    route: Literal["direct", "agent"]
    tier: int
    model_calls: int
    model_used: str
    fallback_used: bool
    failures: list[str]
    executed_calls: list[str]
    proposed_calls: list[str]
    pending_calls: list[dict[str, Any]]
    halted: bool
    history_floor: str
    usage: dict[str, Any]
    # The claim check: a note for the next model call, and how many answers it withdrew.
    correction: str
    corrections: int
    # Why earlier tiers failed this turn, in plain words ("ollama:tiny (timed out)").
    fallback_reasons: list[str]
