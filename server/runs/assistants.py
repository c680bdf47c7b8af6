"""Assistants: a graph plus the config, context and metadata its runs start with, versioned.

Every served graph has one system assistant (`metadata.created_by = "system"`, owner NULL),
shared by every user and changed only by the server (from its graphs at start-up). An
assistant a user creates is theirs alone: another user's id answers 404, as for threads.
Each change writes a new row of `assistant_versions` and makes it the latest; `set_latest`
points the assistant back at any earlier version. Assistants of graphs the server does not
serve (any more) are hidden, not deleted: serving the graph again brings them back.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from server.runs.graphs import GraphRegistry
from server.runs.runner import TurnError
from tools.database import Connection, open_migrated
from tools.migrations import Migration
from tools.postgres import pg_schema
from tools.sqlite import fetch_all, fetch_one

SortField = Literal["assistant_id", "created_at", "updated_at", "name", "graph_id"]
SortOrder = Literal["asc", "desc"]

FIELDS = (
    "assistant_id",
    "graph_id",
    "name",
    "description",
    "config",
    "context",
    "created_at",
    "updated_at",
    "metadata",
    "version",
)
"""An assistant's fields, as the Agent Server shows them (and as `select` may name them)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS assistants (
    assistant_id TEXT PRIMARY KEY,
    owner TEXT,
    graph_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    config TEXT NOT NULL DEFAULT '{}',
    context TEXT NOT NULL DEFAULT '{}',
    metadata TEXT NOT NULL DEFAULT '{}',
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS assistants_owner ON assistants (owner, graph_id, created_at);
CREATE TABLE IF NOT EXISTS assistant_versions (
    assistant_id TEXT NOT NULL REFERENCES assistants (assistant_id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    graph_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    config TEXT NOT NULL DEFAULT '{}',
    context TEXT NOT NULL DEFAULT '{}',
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    PRIMARY KEY (assistant_id, version)
);
"""

MIGRATIONS: list[Migration] = [SCHEMA]
PG_MIGRATIONS: list[Migration] = [pg_schema(SCHEMA, rowid=("assistants",))]
"""The assistants' schema versions, oldest first (see `tools.migrations.migrate`)."""

_COLUMNS = (
    "assistant_id, graph_id, name, description, config, context, created_at, updated_at,"
    " metadata, version, owner"
)
_VERSION_COLUMNS = (
    "assistant_id, graph_id, name, description, config, context, created_at, metadata, version"
)


@dataclass(frozen=True)
class ResolvedAssistant:
    """What a run on an assistant starts from: its graph and its latest config and context."""

    assistant_id: str
    graph_id: str
    version: int
    config: dict[str, Any]
    context: dict[str, Any]
    metadata: dict[str, Any]


@dataclass(frozen=True)
class AssistantChange:
    """The fields a create or patch sets; None leaves a field as it is (or at its default)."""

    graph_id: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = None
    description: str | None = None


class AssistantStore:
    """Assistants and their versions in runs.sqlite, under the migration store "assistants"."""

    def __init__(self, conn: Connection, graphs: GraphRegistry) -> None:
        self._conn = conn
        self.graphs = graphs
        # One connection serves every request; a transaction spans several awaits.
        self._write = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        path: Path,
        graphs: GraphRegistry,
        *,
        busy_timeout_ms: int,
        synchronous: str,
        database_url: str | None = None,
    ) -> AssistantStore:
        """Open (create or migrate) the store at `path` and register each graph's system assistant.

        Raises RuntimeError when the file's assistants tables are newer than this code knows.
        """
        conn = await open_migrated(
            path,
            "assistants",
            MIGRATIONS,
            PG_MIGRATIONS,
            busy_timeout_ms=busy_timeout_ms,
            synchronous=synchronous,
            database_url=database_url,
        )
        try:
            store = cls(conn, graphs)
            await store._register_system()
        except BaseException:
            await conn.close()  # its thread would keep the process alive
            raise
        return store

    async def close(self) -> None:
        """Close the connection."""
        await self._conn.close()

    async def _register_system(self) -> None:
        # Several processes may start on one data dir: each statement is idempotent, and the
        # row keeps its first created_at so sorting by it is stable across restarts.
        for served in self.graphs:
            stamp = _now()
            description = served.description or None
            async with self._write, _Transaction(self._conn):
                await self._conn.execute(
                    "INSERT INTO assistants (assistant_id, owner, graph_id, name, description,"
                    " metadata, version, created_at, updated_at)"
                    ' VALUES (?, NULL, ?, ?, ?, \'{"created_by": "system"}\', 1, ?, ?)'
                    " ON CONFLICT (assistant_id) DO UPDATE SET name = excluded.name,"
                    " description = excluded.description WHERE assistants.owner IS NULL",
                    (
                        served.assistant_id,
                        served.graph_id,
                        served.graph_id,
                        description,
                        stamp,
                        stamp,
                    ),
                )
                await self._conn.execute(
                    "INSERT INTO assistant_versions (assistant_id, version, graph_id, name,"
                    " description, metadata, created_at)"
                    " SELECT assistant_id, 1, graph_id, name, description, metadata, created_at"
                    " FROM assistants WHERE assistant_id = ? AND owner IS NULL"
                    " ON CONFLICT (assistant_id, version) DO UPDATE SET name = excluded.name,"
                    " description = excluded.description",
                    (served.assistant_id,),
                )

    # --- reading ---------------------------------------------------------------------------

    def canonical_id(self, assistant_id: str) -> str:
        """The assistant id a graph id stands for (its system assistant), else the id itself.

        Raises 422 for an id that is neither a served graph id nor a UUID.
        """
        served = self.graphs.find(assistant_id)
        if served is not None:
            return served.assistant_id
        try:
            return str(uuid.UUID(assistant_id))
        except ValueError:
            raise TurnError(
                422,
                # langgraph dev's sentence, which clients and suites match on.
                f"Invalid assistant: {assistant_id!r}. Must be either a valid assistant UUID"
                f" or one of the registered graphs: {', '.join(self.graphs.ids())}",
            ) from None

    async def get(self, assistant_id: str, user_id: str) -> dict[str, Any]:
        """Return the assistant (by id, or a graph id for its system assistant), or raise 404."""
        row = await self._row(self.canonical_id(assistant_id), user_id)
        if row is None:
            raise TurnError(404, f"Assistant {assistant_id} not found.")
        return _assistant(row)

    async def resolve(self, assistant_id: str, user_id: str) -> ResolvedAssistant:
        """What a run of `user_id` on `assistant_id` (or a graph id) starts from.

        Raises TurnError: 422 for an id that is neither a UUID nor a served graph id, 404 for
        an assistant that does not exist, is another user's, or whose graph is not served.
        """
        found = await self.get(assistant_id, user_id)
        return ResolvedAssistant(
            assistant_id=found["assistant_id"],
            graph_id=found["graph_id"],
            version=found["version"],
            config=found["config"],
            context=found["context"],
            metadata=found["metadata"],
        )

    async def _row(self, assistant_id: str, user_id: str) -> Any:
        served = self.graphs.ids()
        return await fetch_one(
            self._conn,
            f"SELECT {_COLUMNS} FROM assistants WHERE assistant_id = ?"
            " AND (owner IS NULL OR owner = ?)"
            f" AND graph_id IN ({', '.join('?' * len(served))})",
            (assistant_id, user_id, *served),
        )

    async def search(
        self,
        user_id: str,
        *,
        graph_id: str | None = None,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        sort_by: SortField | None = None,
        sort_order: SortOrder | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Return the user's and the system assistants that match, and whether more follow.

        `name` matches any part of the name, ignoring case; `metadata` matches assistants
        whose metadata has every given key with that value. Newest first unless `sort_by`.
        """
        where, params = self._filters(user_id, graph_id, name, metadata)
        column = sort_by or "created_at"
        order = "ASC" if sort_order == "asc" else "DESC"
        # Names and graph ids sort ignoring case; `column` is one of SortField, never input.
        key = f"lower({column})" if column in ("name", "graph_id") else column
        rows = await fetch_all(
            self._conn,
            f"SELECT {_COLUMNS} FROM assistants WHERE {where}"
            f" ORDER BY {key} {order}, rowid {order} LIMIT ? OFFSET ?",
            (*params, limit + 1, offset),
        )
        return [_assistant(row) for row in rows[:limit]], len(rows) > limit

    async def count(
        self,
        user_id: str,
        *,
        graph_id: str | None = None,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> int:
        """Return how many assistants `search` would find with no limit."""
        where, params = self._filters(user_id, graph_id, name, metadata)
        row = await fetch_one(self._conn, f"SELECT COUNT(*) FROM assistants WHERE {where}", params)
        return int(row[0]) if row else 0

    def _filters(
        self,
        user_id: str,
        graph_id: str | None,
        name: str | None,
        metadata: dict[str, Any] | None,
    ) -> tuple[str, list[Any]]:
        served = self.graphs.ids()
        where = [
            "(owner IS NULL OR owner = ?)",
            f"graph_id IN ({', '.join('?' * len(served))})",
        ]
        params: list[Any] = [user_id, *served]
        if graph_id is not None:
            where.append("graph_id = ?")
            params.append(graph_id)
        if name:
            # instr, not LIKE: a % or _ in the name is a character, not a wildcard.
            where.append("instr(lower(name), lower(?)) > 0")
            params.append(name)
        where_metadata, metadata_params = _metadata_filter("assistants", metadata)
        return " AND ".join(where + where_metadata), params + metadata_params

    async def versions(
        self,
        assistant_id: str,
        user_id: str,
        *,
        metadata: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Return the assistant's versions, newest first; 404 when it is not found."""
        canonical = self.canonical_id(assistant_id)
        if await self._row(canonical, user_id) is None:
            raise TurnError(404, f"Assistant {assistant_id} not found.")
        where_metadata, params = _metadata_filter("assistant_versions", metadata)
        rows = await fetch_all(
            self._conn,
            f"SELECT {_VERSION_COLUMNS} FROM assistant_versions"
            f" WHERE {' AND '.join(['assistant_id = ?', *where_metadata])}"
            " ORDER BY version DESC LIMIT ? OFFSET ?",
            (canonical, *params, limit, offset),
        )
        return [_version(row) for row in rows]

    # --- writing ---------------------------------------------------------------------------

    async def create(
        self,
        user_id: str,
        change: AssistantChange,
        *,
        assistant_id: str | None = None,
        if_exists: Literal["raise", "do_nothing"] = "raise",
    ) -> dict[str, Any]:
        """Create the user's assistant (version 1) and return it.

        With `if_exists="do_nothing"` an existing assistant of that id the user can see is
        returned unchanged; otherwise an existing id answers 409. Raises 404 for a graph the
        server does not serve, 400 for both `config.configurable` and `context`.
        """
        graph_id = self._served_graph(change.graph_id)
        config, context = _config_and_context(change.config or {}, change.context)
        new_id = str(uuid.UUID(assistant_id)) if assistant_id else str(uuid.uuid4())
        stamp = _now()
        async with self._write, _Transaction(self._conn):
            existing = await fetch_one(
                self._conn,
                f"SELECT {_COLUMNS} FROM assistants WHERE assistant_id = ?",
                (new_id,),
            )
            if existing is not None:
                visible = existing[-1] in (None, user_id) and existing[1] in self.graphs.ids()
                if if_exists == "do_nothing" and visible:
                    return _assistant(existing)
                raise TurnError(409, f"Assistant {new_id} already exists.")
            values = (
                graph_id,
                change.name or "Untitled",
                change.description,
                json.dumps(config),
                json.dumps(context or {}),
                json.dumps(change.metadata or {}),
            )
            await self._conn.execute(
                "INSERT INTO assistants (assistant_id, owner, graph_id, name, description,"
                " config, context, metadata, version, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
                (new_id, user_id, *values, stamp, stamp),
            )
            await self._insert_version(new_id, 1, values, stamp)
        return await self.get(new_id, user_id)

    async def patch(
        self,
        assistant_id: str,
        user_id: str,
        change: AssistantChange,
        check_metadata: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Write a new version from the latest one with `change` applied, and make it latest.

        `metadata` is merged key by key into the latest metadata (`check_metadata` may refuse
        the result by raising, which changes nothing); `config` and `context` replace theirs
        when given. Raises 404 for an assistant the user does not own, 403 for a system
        assistant, 404 for a graph the server does not serve.
        """
        canonical = self.canonical_id(assistant_id)
        graph_id = None if change.graph_id is None else self._served_graph(change.graph_id)
        config, context = _config_and_context(change.config or {}, change.context)
        stamp = _now()
        async with self._write, _Transaction(self._conn):
            latest = await self._owned(canonical, assistant_id, user_id)
            current = _assistant(latest)
            version_row = await fetch_one(
                self._conn,
                "SELECT COALESCE(MAX(version), 0) + 1 FROM assistant_versions"
                " WHERE assistant_id = ?",
                (canonical,),
            )
            version = int(version_row[0])
            metadata = {**current["metadata"], **(change.metadata or {})}
            if check_metadata is not None:
                check_metadata(metadata)
            values = (
                graph_id or current["graph_id"],
                current["name"] if change.name is None else change.name,
                current["description"] if change.description is None else change.description,
                json.dumps(config or current["config"]),
                json.dumps(current["context"] if context is None else context),
                json.dumps(metadata),
            )
            await self._insert_version(canonical, version, values, stamp)
            await self._point_at(canonical, version, stamp)
        return await self.get(canonical, user_id)

    async def set_latest(self, assistant_id: str, user_id: str, version: int) -> dict[str, Any]:
        """Make an earlier (or later) version the latest; 404 when that version does not exist.

        A system assistant has one version: setting it changes nothing, any other is 404.
        """
        canonical = self.canonical_id(assistant_id)
        row = await self._row(canonical, user_id)
        if row is None:
            raise TurnError(404, f"Assistant {assistant_id} not found.")
        async with self._write, _Transaction(self._conn):
            exists = await fetch_one(
                self._conn,
                "SELECT 1 FROM assistant_versions WHERE assistant_id = ? AND version = ?",
                (canonical, version),
            )
            if exists is None:
                raise TurnError(404, f"Version {version} not found for assistant {assistant_id}.")
            if row[-1] is not None:
                await self._point_at(canonical, version, _now())
        return await self.get(canonical, user_id)

    async def delete(self, assistant_id: str, user_id: str) -> str:
        """Delete the user's assistant and all its versions; return its id.

        Raises 404 for an assistant the user does not own, 403 for a system assistant.
        """
        canonical = self.canonical_id(assistant_id)
        async with self._write, _Transaction(self._conn):
            await self._owned(canonical, assistant_id, user_id)
            await self._conn.execute("DELETE FROM assistants WHERE assistant_id = ?", (canonical,))
        return canonical

    async def _owned(self, canonical: str, asked: str, user_id: str) -> Any:
        row = await self._row(canonical, user_id)
        if row is None:
            raise TurnError(404, f"Assistant {asked} not found.")
        if row[-1] is None:
            raise TurnError(
                403,
                f"Assistant {asked} is the system assistant of graph {row[1]!r}, which the"
                " server keeps; create your own assistant of that graph to change its settings.",
            )
        return row

    async def _insert_version(
        self, assistant_id: str, version: int, values: tuple[Any, ...], stamp: str
    ) -> None:
        await self._conn.execute(
            "INSERT INTO assistant_versions (assistant_id, version, graph_id, name, description,"
            " config, context, metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (assistant_id, version, *values, stamp),
        )

    async def _point_at(self, assistant_id: str, version: int, stamp: str) -> None:
        await self._conn.execute(
            "UPDATE assistants SET (graph_id, name, description, config, context, metadata)"
            " = (SELECT graph_id, name, description, config, context, metadata"
            "    FROM assistant_versions WHERE assistant_id = ? AND version = ?),"
            " version = ?, updated_at = ? WHERE assistant_id = ?",
            (assistant_id, version, version, stamp, assistant_id),
        )

    def _served_graph(self, graph_id: str | None) -> str:
        if graph_id is None or self.graphs.find(graph_id) is None:
            raise TurnError(
                404,
                f"Graph {graph_id!r} not found; this server serves {', '.join(self.graphs.ids())}.",
            )
        return graph_id


def _config_and_context(
    config: dict[str, Any], context: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Keep `config.configurable` and `context` one and the same, as the Agent Server does."""
    configurable = config.get("configurable")
    if configurable and context:
        raise TurnError(
            400,
            "Give either config.configurable or context, not both; context is the newer one.",
        )
    if configurable:
        return config, dict(configurable)
    if context:
        return {**config, "configurable": context}, context
    return config, context


def _metadata_filter(table: str, metadata: dict[str, Any] | None) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for key, value in (metadata or {}).items():
        # The key is bound as a value, never spliced into a JSON path: any key is safe.
        where.append(
            f"EXISTS (SELECT 1 FROM json_each({table}.metadata) AS m"
            " WHERE m.key = ? AND m.value IS json_extract(?, '$'))"
        )
        params += [key, json.dumps(value)]
    return where, params


def _assistant(row: Any) -> dict[str, Any]:
    values = dict(zip((*FIELDS, "owner"), row, strict=True))
    values.pop("owner")
    for key in ("config", "context", "metadata"):
        values[key] = json.loads(values[key])
    return values


def _version(row: Any) -> dict[str, Any]:
    names = (
        "assistant_id",
        "graph_id",
        "name",
        "description",
        "config",
        "context",
        "created_at",
        "metadata",
        "version",
    )
    values = dict(zip(names, row, strict=True))
    for key in ("config", "context", "metadata"):
        values[key] = json.loads(values[key])
    return values


def _now() -> str:
    # Microseconds: assistants created within one second still sort in creation order.
    return datetime.now(UTC).isoformat(timespec="microseconds")


class _Transaction:
    """`BEGIN IMMEDIATE` … `COMMIT`, or `ROLLBACK` on any exception (the caller holds the lock)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def __aenter__(self) -> None:
        await self._conn.execute("BEGIN IMMEDIATE")

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        await self._conn.execute("ROLLBACK" if kind else "COMMIT")
