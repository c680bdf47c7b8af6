"""Long-lived resources a compiled graph's nodes use: model tiers, the task store, settings.

Runtime context is per-run and must stay plain data (Studio renders it as a form), so the
live clients and connections are handed to `build_graph` instead and bound to that graph's
nodes: two graphs in one process never share them. The server, the CLI and tests open
`Services` themselves; the checkpointer-less graph `langgraph dev` loads gets `LazyServices`,
which it opens from settings the first time one of its nodes runs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import cached_property

from graph.redaction import Redactor
from graph.settings import Settings
from models.providers import Tier, build_tiers
from tools.store import TaskStore


@dataclass
class Services:
    """What a running graph needs beyond its state and context."""

    settings: Settings
    tiers: list[Tier]
    tasks: TaskStore

    @cached_property
    def redactor(self) -> Redactor:
        """Removes this process's secrets and system-prompt echoes from what leaves it."""
        return Redactor.from_settings(self.settings)


async def open_services(settings: Settings) -> Services:
    """Build services from settings: the configured tiers and the task store on disk."""
    tasks = await TaskStore.open(
        settings.tasks_db,
        busy_timeout_ms=settings.busy_timeout_ms,
        synchronous=settings.sqlite_synchronous,
        redactor=Redactor.from_settings(settings),
        database_url=settings.postgres_url,
    )
    return Services(settings=settings, tiers=build_tiers(settings), tasks=tasks)


class LazyServices:
    """Services opened from `settings` on first use, once, for the one graph that owns them.

    A module-level graph is built at import, when no event loop runs and nothing may be
    opened yet; its services open when its first node runs.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._opened: Services | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Services:
        """Return the services, opening them on the first call."""
        if self._opened is None:
            async with self._lock:
                if self._opened is None:
                    self._opened = await open_services(self.settings)
        return self._opened
