"""Locked, full or failing storage is a 503 with Retry-After; other database errors stay 500."""

import sqlite3

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server.api.storage_errors import answer_storage_errors
from tools.storage_errors import RETRY_AFTER_S, classify


def failing_commit(message: str) -> Exception:
    """A failed ROLLBACK raised while handling a failed COMMIT, hiding the first error."""
    rollback = sqlite3.OperationalError("cannot rollback - no transaction is active")
    rollback.__context__ = sqlite3.OperationalError(message)
    return rollback


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("database is locked", "busy"),
        ("database table is locked", "busy"),
        ("database or disk is full", "full"),
        ("disk I/O error", "io"),
    ],
)
def test_storage_errors_are_classified_even_behind_a_failed_rollback(
    message: str, reason: str
) -> None:
    direct = classify(sqlite3.OperationalError(message))
    hidden = classify(failing_commit(message))
    assert direct is not None and direct.reason == reason
    assert hidden is not None and hidden.reason == reason


def test_other_errors_are_not_storage_errors() -> None:
    assert classify(sqlite3.OperationalError("no such table: tasks")) is None
    assert classify(sqlite3.IntegrityError("UNIQUE constraint failed")) is None
    assert classify(RuntimeError("database is locked")) is None


def app_raising(exc: Exception) -> TestClient:
    app = FastAPI()
    answer_storage_errors(app)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


def test_a_locked_database_answers_503_with_retry_after_and_a_sentence() -> None:
    reply = app_raising(sqlite3.OperationalError("database is locked")).get("/boom")
    assert reply.status_code == 503
    assert reply.headers["retry-after"] == str(RETRY_AFTER_S)
    assert "locked by another process" in reply.json()["detail"]


def test_a_full_disk_answers_503() -> None:
    reply = app_raising(sqlite3.OperationalError("database or disk is full")).get("/boom")
    assert reply.status_code == 503 and "disk is full" in reply.json()["detail"]


def test_other_database_errors_stay_a_generic_500() -> None:
    reply = app_raising(sqlite3.OperationalError("no such table: secret_stuff")).get("/boom")
    assert reply.status_code == 500
    assert "secret_stuff" not in reply.text
