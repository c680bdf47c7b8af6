"""Who a failed login came from: X-Forwarded-For is trusted only from configured proxies."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.conftest import LiveServer

pytestmark = pytest.mark.integration

KEYS = "k-root-0000:root:admin"
ROOT = {"X-Api-Key": "k-root-0000"}
SPOOFED = {"X-Api-Key": "wrong", "X-Forwarded-For": "1.2.3.4"}


def failed_logins(server: LiveServer) -> list[dict[str, object]]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/tasks", headers=SPOOFED).status_code == 401
        rows = client.get("/audit", params={"kind": "login_failed"}, headers=ROOT).json()
    assert rows, "the failed login was not audited"
    return [row["detail"] for row in rows]


def test_a_forwarded_header_from_a_local_process_is_not_believed(tmp_path):
    server = LiveServer(tmp_path / "data", env={"TASKAGENT_API_KEYS": KEYS})
    try:
        details = failed_logins(server)
    finally:
        server.stop()
    assert [d["client"] for d in details] == ["127.0.0.1"]  # not the claimed 1.2.3.4
    assert [d.get("peer") for d in details] == ["127.0.0.1"]


def test_a_configured_proxy_is_believed_and_the_peer_is_recorded(tmp_path):
    env = {"TASKAGENT_API_KEYS": KEYS, "TASKAGENT_FORWARDED_ALLOW_IPS": "127.0.0.1"}
    server = LiveServer(tmp_path / "data", env=env)
    try:
        details = failed_logins(server)
    finally:
        server.stop()
    assert [(d["client"], d.get("peer")) for d in details] == [("1.2.3.4", "127.0.0.1")]
