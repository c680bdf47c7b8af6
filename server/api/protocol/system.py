"""The server itself: liveness and what it supports."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from server.api.protocol.common import VERSION
from server.runs.projections import SUPPORTED_MODES

router = APIRouter(tags=["agent protocol"])


@router.get("/ok")
async def ok() -> dict[str, bool]:
    """Liveness, as the Agent Server answers it."""
    return {"ok": True}


@router.get("/info")
async def info(request: Request) -> dict[str, Any]:
    """Describe the server and what it supports."""
    return {
        "version": VERSION,
        "langgraph_py_version": _version("langgraph"),
        "flags": {
            "assistants": True,
            "crons": True,
            "langsmith": False,
            "langsmith_tracing_replicas": False,
            "langsmith_tracing_session_on_runs": False,
            "thread_ttl": True,
        },
        "host": {"kind": "self-hosted", "project_id": None, "revision_id": None},
        "metadata": {"stream_modes": list(SUPPORTED_MODES)},
    }


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
