"""Long-lived resources the nodes use (model tiers, task store), installed by the host process.

Runtime context is per-run and must stay plain data (Studio renders it as a form), so the
live clients and connections a process owns are installed here once: by the server's
lifespan, the CLI, or a test. Under `langgraph dev`, the defaults are built lazily from
settings on first use.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import cached_property

from graph.redaction import Redactor
from graph.settings import Settings, get_settings
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


_installed: Services | None = None
_lock = asyncio.Lock()


def install_services(services: Services | None) -> None:
    """Make `services` the ones every node uses (None uninstalls)."""
    global _installed
    _installed = services


async def open_services(settings: Settings | None = None) -> Services:
    """Build services from settings: the configured tiers and the task store on disk."""
    settings = settings or get_settings()
    tasks = await TaskStore.open(
        settings.tasks_db,
        busy_timeout_ms=settings.busy_timeout_ms,
        synchronous=settings.sqlite_synchronous,
        redactor=Redactor.from_settings(settings),
    )
    return Services(settings=settings, tiers=build_tiers(settings), tasks=tasks)


async def get_services() -> Services:
    """Return the installed services, opening the defaults on first use."""
    global _installed
    if _installed is None:
        async with _lock:
            if _installed is None:
                _installed = await open_services()
    return _installed
