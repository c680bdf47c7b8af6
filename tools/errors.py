"""The problem a tool reports to the model in plain words."""

from __future__ import annotations

from typing import Any


class ToolError(Exception):
    """A problem the model should be told about in plain words (unknown id, bad date...).

    `details` go into the result next to the error (the candidates for an unclear task).
    """

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}

    def result(self) -> dict[str, Any]:
        """Return the tool result that reports this problem."""
        return {**self.details, "ok": False, "error": str(self)}
