"""Per-run identity and settings, supplied by the caller and never writable by the model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["read", "write", "admin"]
TierName = Literal["ollama", "openai", "offline"]
TIER_NAMES: tuple[TierName, ...] = ("ollama", "openai", "offline")


@dataclass(frozen=True)
class Context:
    """Who is asking and how this run may behave; Studio renders it as a form."""

    user_id: str = field(default="local", metadata={"description": "User the run acts for."})
    role: Role = field(
        default="admin",
        metadata={"description": "read: look only; write: change own tasks; admin: everything."},
    )
    request_id: str = field(default="", metadata={"description": "Correlation id for logs."})
    model_tier: TierName | None = field(
        default=None,
        metadata={"description": "Start at this tier (ollama, openai, offline); default: first."},
    )
