"""The store: put, get, delete and search items, list namespaces — each user in their own space.

LangGraph's SQLite store behind it is the one graphs reach as `runtime.store`; a caller sees
(and a run on their thread writes) only their own namespaces (server/runs/user_store.py).
"""

from __future__ import annotations

import re
from datetime import UTC
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from langgraph.store.base import InvalidNamespaceError, Item
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from server.api.protocol.common import Ctx, Runner
from server.runs.runner import AgentRunner, TurnError
from server.runs.user_store import UserSpace
from server.security.limits import MAX_OFFSET, MAX_TTL_MINUTES, refuse_oversized_json

router = APIRouter(tags=["store"])

Label = Annotated[str, Field(min_length=1, max_length=200)]
Namespace = Annotated[list[Label], Field(max_length=20)]


class ItemPut(BaseModel):
    """Store or replace one item."""

    model_config = ConfigDict(extra="ignore")
    namespace: Namespace
    key: str = Field(min_length=1, max_length=1000)
    value: dict[str, Any]
    index: Literal[False] | list[str] | None = None
    ttl: float | None = Field(
        default=None, gt=0, le=MAX_TTL_MINUTES, description="Minutes until it expires."
    )


class ItemGet(BaseModel):
    """Which item to read (query parameters; unknown ones are refused)."""

    model_config = ConfigDict(extra="forbid")
    key: str | None = Field(default=None, max_length=1000)
    namespace: list[str] | None = None
    refresh_ttl: bool | None = None


class ItemDelete(BaseModel):
    """Delete one item."""

    model_config = ConfigDict(extra="ignore")
    namespace: Namespace = Field(default_factory=list)
    key: str = Field(min_length=1, max_length=1000)


class ItemSearch(BaseModel):
    """Find items under a namespace prefix."""

    model_config = ConfigDict(extra="ignore")
    namespace_prefix: Namespace | None = None
    filter: dict[str, Any] | None = None
    limit: StrictInt = Field(default=10, ge=1, le=1000)
    offset: StrictInt = Field(default=0, ge=0, le=MAX_OFFSET)
    query: str | None = Field(default=None, max_length=10_000)
    refresh_ttl: bool | None = None


class NamespaceList(BaseModel):
    """Which namespaces to list."""

    model_config = ConfigDict(extra="ignore")
    prefix: Namespace | None = None
    suffix: Namespace | None = None
    max_depth: StrictInt | None = Field(default=None, ge=1, le=100)
    limit: StrictInt = Field(default=100, ge=1, le=1000)
    offset: StrictInt = Field(default=0, ge=0, le=MAX_OFFSET)


def _space(runner: AgentRunner, user_id: str) -> UserSpace:
    return runner.store.for_user(user_id)


def _namespace(labels: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """The namespace as a tuple; 422 for a label LangGraph's store cannot hold."""
    namespace = tuple(labels or ())
    for label in namespace:
        if not label or "." in label or "\x00" in label:
            raise TurnError(
                422, f"Namespace label {label!r} must be a non-empty string without periods."
            )
    return namespace


def item_json(item: Item) -> dict[str, Any]:
    """An item (or search hit) the way the Agent Server shows it (times in UTC, with offset)."""
    shown = item.dict()
    for field in ("created_at", "updated_at"):
        stamp = getattr(item, field)
        # SQLite's CURRENT_TIMESTAMP is UTC without an offset.
        shown[field] = (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).isoformat()
    return shown


@router.put("/store/items", status_code=204)
async def put_item(body: ItemPut, context: Ctx, runner: Runner) -> Response:
    """Store or replace an item in one of the caller's namespaces."""
    refuse_oversized_json(runner.services.settings, value=body.value)
    if _wider_than_64_bits(body.value):
        # The store writes values with orjson, which refuses such integers (a 500 before).
        raise TurnError(422, "value: holds an integer wider than 64 bits; send it as a string.")
    try:
        await _space(runner, context.user_id).aput(
            _namespace(body.namespace), body.key, body.value, index=body.index, ttl=body.ttl
        )
    except InvalidNamespaceError as exc:  # empty, or under the reserved root "langgraph"
        raise TurnError(400, str(exc)) from None
    return Response(status_code=204)


@router.get("/store/items")
async def get_item(
    request: Request, asked: Annotated[ItemGet, Query()], context: Ctx, runner: Runner
) -> JSONResponse:
    """Return an item of the caller's, or null when there is none."""
    if len(request.query_params.getlist("key")) > 1:
        raise TurnError(422, "Give the key once.")
    key, namespace = asked.key, asked.namespace
    if not key:
        raise TurnError(400, "Key is required.")
    # The SDKs send the namespace dotted ("a.b"); repeated parameters are labels as well.
    labels = namespace or []
    if len(labels) == 1:
        labels = labels[0].split(".") if labels[0] else []
    found = await _space(runner, context.user_id).aget(
        _namespace(labels), key, refresh_ttl=asked.refresh_ttl
    )
    return JSONResponse(None if found is None else item_json(found))


@router.delete("/store/items", status_code=204)
async def delete_item(body: ItemDelete, context: Ctx, runner: Runner) -> Response:
    """Delete an item of the caller's (nothing there is no error)."""
    namespace = _namespace(body.namespace)
    if namespace:
        await _space(runner, context.user_id).adelete(namespace, body.key)
    return Response(status_code=204)


# The filter keys SQLite's store accepts (it splices them into SQL); PostgreSQL's would take
# any, so the API refuses the rest on both and a client sees one contract.
FILTER_KEY = re.compile(r"[a-zA-Z0-9_.-]+")


@router.post("/store/items/search")
async def search_items(body: ItemSearch, context: Ctx, runner: Runner) -> dict[str, Any]:
    """Find the caller's items under a namespace prefix, filtered by value fields."""
    refuse_oversized_json(runner.services.settings, filter=body.filter)
    unsafe = [key for key in body.filter or {} if not FILTER_KEY.fullmatch(key)]
    if unsafe:
        raise TurnError(
            422,
            f"Cannot search with this filter: the key {unsafe[0]!r} holds characters other"
            " than letters, digits, '_', '.' and '-'.",
        )
    try:
        found = await _space(runner, context.user_id).asearch(
            _namespace(body.namespace_prefix),
            query=body.query,
            filter=body.filter,
            limit=body.limit,
            offset=body.offset,
            refresh_ttl=body.refresh_ttl,
        )
    except (InvalidNamespaceError, ValueError) as exc:
        # A filter the store cannot express (unknown operator, unsafe key).
        raise TurnError(422, f"Cannot search with this filter: {exc}") from None
    return {"items": [item_json(item) for item in found]}


@router.post("/store/namespaces")
async def list_namespaces(body: NamespaceList, context: Ctx, runner: Runner) -> dict[str, Any]:
    """List the caller's namespaces, by prefix, suffix and depth."""
    prefix = _namespace(body.prefix) if body.prefix else None
    suffix = _namespace(body.suffix) if body.suffix else None
    found = await _space(runner, context.user_id).alist_namespaces(
        prefix=prefix,
        suffix=suffix,
        max_depth=body.max_depth,
        limit=body.limit,
        offset=body.offset,
    )
    return {"namespaces": [list(namespace) for namespace in found]}


def _wider_than_64_bits(value: Any) -> bool:
    """Whether a JSON value holds an integer outside the signed and unsigned 64-bit range."""
    if isinstance(value, dict):
        return any(_wider_than_64_bits(item) for item in value.values())
    if isinstance(value, list):
        return any(_wider_than_64_bits(item) for item in value)
    return isinstance(value, int) and not -(2**63) <= value < 2**64
