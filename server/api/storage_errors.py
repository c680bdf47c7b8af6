"""Storage errors raised by any route answered as 503 + `Retry-After`, not 500.

Which errors count is decided by `tools.storage_errors.classify`; this module is only
the HTTP answer.
"""

from __future__ import annotations

import logging
import sqlite3

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout

from tools.storage_errors import RETRY_AFTER_S, StorageUnavailable, classify

log = logging.getLogger(__name__)


def unavailable_response(error: StorageUnavailable) -> JSONResponse:
    """The 503 answer: a sentence saying what is wrong, and when to come back."""
    return JSONResponse(
        status_code=503,
        content={"detail": error.message},
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def answer_storage_errors(app: FastAPI) -> None:
    """Answer storage errors raised by any route with 503 + Retry-After (others stay 500)."""

    async def storage_error(request: Request, exc: Exception) -> JSONResponse:
        error = classify(exc)
        if error is None:
            log.exception("database error on %s", request.url.path, exc_info=exc)
            return JSONResponse(
                status_code=500, content={"detail": "Internal error; see server log."}
            )
        log.warning("storage unavailable on %s: %s (%s)", request.url.path, error.reason, exc)
        return unavailable_response(error)

    app.add_exception_handler(StorageUnavailable, storage_error)
    app.add_exception_handler(sqlite3.DatabaseError, storage_error)
    app.add_exception_handler(psycopg.Error, storage_error)
    app.add_exception_handler(PoolTimeout, storage_error)
