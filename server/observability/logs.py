"""Structured logs: one JSON object per line on stderr, carrying who and what each line is about.

`request_id`, `run_id`, `thread_id` and `user` live in context variables: the request
middleware (`request_context`) sets the request's, the run manager sets a run's inside the
run's own task (runs outlive their request), and every log line picks up whatever is known
where it is written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from graph.redaction import Redactor

LogFormat = Literal["json", "text"]
REQUEST_ID_HEADER = "X-Request-ID"
CONTEXT_FIELDS = ("request_id", "run_id", "thread_id", "user")

_context: dict[str, ContextVar[str | None]] = {
    name: ContextVar(f"taskagent_log_{name}", default=None) for name in CONTEXT_FIELDS
}
# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_FIELDS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "color_message", "taskName"}
)


def bind(**values: str | None) -> None:
    """Set log context fields (request_id, run_id, thread_id, user) for this task onward."""
    for name, value in values.items():
        _context[name].set(value or None)


@contextmanager
def fresh_context(**values: str | None) -> Iterator[None]:
    """Start from an empty log context bound to `values` (a new request); restore it on exit."""
    tokens = {name: var.set(values.get(name) or None) for name, var in _context.items()}
    try:
        yield
    finally:
        for name, token in tokens.items():
            _context[name].reset(token)


def log_context() -> dict[str, str]:
    """Return the log context fields known here."""
    return {name: value for name, var in _context.items() if (value := var.get()) is not None}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = log_context()
    fields.update((k, v) for k, v in vars(record).items() if k not in _RECORD_FIELDS)
    if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
        client, method, path, _, status = record.args
        fields.update(client=client, method=method, path=path, status=status)
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, context fields and extras."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        """Format records, redacting every value with `redactor` (default: key shapes only)."""
        super().__init__()
        self.redactor = redactor or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        """Render `record` as a single line of JSON."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _fields(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        clean = self.redactor.value(json.loads(json.dumps(entry, default=str)))
        return json.dumps(clean, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal: the same fields as key=value after the message."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        """Format records, redacting each line with `redactor` (default: key shapes only)."""
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.redactor = redactor or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        """Render `record` (with its traceback, if any), redacted."""
        return self.redactor.text(super().format(record))

    def formatMessage(self, record: logging.LogRecord) -> str:
        """Render the first line: the message followed by its context fields and extras."""
        extras = " ".join(
            f"{k}={json.dumps(v, default=str, ensure_ascii=False)}"
            for k, v in _fields(record).items()
        )
        line = super().formatMessage(record)
        return f"{line} {extras}" if extras else line


# Libraries whose DEBUG lines carry user data: aiosqlite prints every SQL parameter (task
# text, key digests), sse-starlette every event sent, openai every request body. They never
# log below these levels, whatever TASKAGENT_LOG_LEVEL says.
QUIET_LOGGERS = {
    "aiosqlite": "WARNING",
    "sse_starlette": "INFO",
    "openai": "INFO",
    "httpcore": "INFO",
}


# Loggers whose records carry a traceback for an expected failure (a model server that is
# down): the message already names the error, the stack says nothing more.
NO_TRACEBACK_LOGGERS = ("langgraph.pregel._retry",)


class DropTraceback(logging.Filter):
    """Keep the record's message, drop its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Strip `exc_info` from `record` and let it through."""
        record.exc_info, record.exc_text = None, None
        return True


def _at_least(level: str, floor: str) -> str:
    return max(level.upper(), floor, key=logging.getLevelName)


def log_config(
    level: str = "INFO", log_format: LogFormat = "json", *, redactor: Redactor
) -> dict[str, Any]:
    """Return a `logging.config.dictConfig` (also uvicorn's `log_config`): all logs to stderr.

    Every line is redacted with `redactor` (the process's secrets and prompt).
    """
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    quiet = {name: {"level": _at_least(level, floor)} for name, floor in QUIET_LOGGERS.items()}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "default": {
                "()": f"{formatter.__module__}.{formatter.__qualname__}",
                "redactor": redactor,
            }
        },
        "filters": {"no_traceback": {"()": f"{__name__}.DropTraceback"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        # uvicorn's loggers keep no handlers of their own: they reach stderr through the root.
        "loggers": {
            **{
                name: {"handlers": [], "level": level.upper(), "propagate": True}
                for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
            },
            **quiet,
            **{name: {"filters": ["no_traceback"]} for name in NO_TRACEBACK_LOGGERS},
        },
    }
