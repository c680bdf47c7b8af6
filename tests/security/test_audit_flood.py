"""Unauthenticated requests cannot fill the disk through the audit trail.

Failed authentications are limited per client address (then 429 without a key check), and
failed logins and rate-limit refusals are audited as one row per client (or user) and
minute with a count, their strings cut short. Real actions stay append-only rows.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import LiveServer
from tests.integration.test_mcp import mcp_http

pytestmark = pytest.mark.integration

KEYS = "k-alice-fl-0000:alice:write,k-root-fl-0000:root:admin"
ALICE = {"X-Api-Key": "k-alice-fl-0000"}
ROOT = {"X-Api-Key": "k-root-fl-0000"}
ATTEMPTS = 2000


def audit_rows(data_dir: Path) -> list[dict[str, Any]]:
    uri = f"file:{data_dir / 'tasks.sqlite'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        conn.row_factory = sqlite3.Row
        found = conn.execute("SELECT * FROM audit ORDER BY id").fetchall()
    return [dict(row) | {"detail": json.loads(row["detail"])} for row in found]


def from_address(server: LiveServer, address: str) -> httpx.Client:
    """A client whose requests come from `address` (any 127.x.y.z is loopback)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=server.url, transport=transport, timeout=30)


def test_a_key_guessing_flood_adds_a_handful_of_counted_rows(tmp_path: Path) -> None:
    env = {"TASKAGENT_API_KEYS": KEYS, "TASKAGENT_RATE_LIMIT_RPM": "5"}
    server = LiveServer(tmp_path / "data", env=env)
    try:
        statuses: list[int] = []
        with from_address(server, "127.0.0.1") as attacker:
            long_path = "/threads/" + "a" * 5000
            for attempt in range(ATTEMPTS):
                path = long_path if attempt == 0 else "/chat/threads"
                statuses.append(
                    attacker.get(path, headers={"X-Api-Key": f"guess-{attempt}"}).status_code
                )
            # Past the limit the address is refused before its key is looked at.
            assert attacker.get("/chat/threads", headers=ALICE).status_code == 429
            refused = attacker.get("/chat/threads", headers={"X-Api-Key": "guess"})
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
            assert "Too many failed authentications" in refused.json()["detail"]
        with from_address(server, "127.0.0.2") as alice:
            # Another address is not affected; alice's own rate limit still applies.
            alice_codes = [alice.get("/chat/threads", headers=ALICE).status_code for _ in range(30)]
            assert alice.get("/audit", headers=ROOT).status_code == 200
    finally:
        server.stop()

    assert statuses[:20] == [401] * 20
    assert statuses.count(429) >= ATTEMPTS - 30
    assert alice_codes[:5] == [200] * 5 and alice_codes[5:] == [429] * 25

    rows = audit_rows(tmp_path / "data")
    noise = [r for r in rows if r["kind"] in ("login_failed", "rate_limit")]
    assert len(noise) <= 6, [(r["kind"], r["user"], r["detail"]) for r in noise]
    attacker_rows = [r for r in noise if r["detail"].get("client") == "127.0.0.1"]
    # Every attempt (and the two after the flood) is counted, in a handful of rows.
    assert sum(r["detail"]["count"] for r in attacker_rows) == ATTEMPTS + 2
    failed = [r for r in attacker_rows if r["kind"] == "login_failed"]
    assert sum(r["detail"]["count"] for r in failed) == statuses.count(401)
    assert failed[0]["detail"]["path"] == ("/threads/" + "a" * 5000)[:200]
    alices = [r for r in noise if r["user"] == "alice"]
    assert [r["kind"] for r in alices] == ["rate_limit"] and alices[0]["detail"]["count"] == 25
    stored = sum(len(json.dumps(r)) for r in noise)
    assert stored < 4000, f"{stored} bytes of audit rows for {ATTEMPTS} refused requests"


def test_real_actions_stay_append_only_while_noise_rows_count(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "data", env={"TASKAGENT_API_KEYS": KEYS})
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            made = client.post(
                "/chat", json={"message": "add a task to water the fern"}, headers=ALICE
            )
            assert made.status_code == 200
            for _ in range(3):
                assert client.get("/chat/threads").status_code == 401
    finally:
        server.stop()
    rows = audit_rows(tmp_path / "data")
    assert [(r["kind"], r["detail"].get("count")) for r in rows] == [
        ("tool", None),
        ("login_failed", 3),
    ]
    with closing(sqlite3.connect(tmp_path / "data" / "tasks.sqlite")) as conn:
        for statement in (
            "UPDATE audit SET detail = '{}' WHERE kind = 'tool'",
            "UPDATE audit SET user = 'mallory' WHERE kind = 'login_failed'",
            "UPDATE audit SET result_summary = '' WHERE kind = 'tool'",
            "DELETE FROM audit WHERE kind = 'login_failed'",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(statement)


def test_the_mcp_http_door_limits_failed_authentications_too(tmp_path: Path) -> None:
    keys = "alice-key:alice:write"
    with mcp_http(tmp_path, TASKAGENT_API_KEYS=keys) as url, httpx.Client(timeout=10) as http:
        accept = {"Accept": "application/json, text/event-stream"}
        codes = [
            http.post(url, json={}, headers={**accept, "X-Api-Key": f"guess-{n}"}).status_code
            for n in range(60)
        ]
        refused = http.post(url, json={}, headers={**accept, "X-Api-Key": "alice-key"})
    assert codes[:20] == [401] * 20 and codes[-30:] == [429] * 30
    assert refused.status_code == 429 and "Too many failed authentications" in refused.text
    failed = [r for r in audit_rows(tmp_path) if r["kind"] == "login_failed"]
    assert len(failed) == 1 and failed[0]["detail"]["count"] == codes.count(401)
