"""Turning graph values (messages, interrupts, Pydantic models) into JSON the clients read."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date, datetime
from enum import Enum
from typing import Any
from uuid import UUID

from langgraph.types import Interrupt, Overwrite
from pydantic import BaseModel


def to_jsonable(value: Any) -> Any:
    """Return `value` as plain JSON types, the way the LangGraph Agent Server serialises it."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Interrupt):
        return {"value": to_jsonable(value.value), "id": value.id}
    if isinstance(value, Overwrite):
        return to_jsonable(value.value)
    if isinstance(value, BaseModel):
        # JSON mode already yields plain JSON types (string keys included): no second walk.
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    return str(value)
