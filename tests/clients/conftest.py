"""Fixtures of the client tests: Node with the npm packages, and the server under test.

`CLIENT_TESTS_SERVER=langgraph-dev` runs the same tests against `langgraph dev` serving the
same graph: the reference the tests are written against.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.node import ensure_node, ensure_packages
from tests.integration.conftest import LiveServer, serve
from tests.integration.test_studio import LanggraphDev


@pytest.fixture(scope="session")
def node() -> str:
    """Node >= 20 with tests/clients' npm packages installed (once per session)."""
    path, why = ensure_node()
    if path is None:
        pytest.skip(f"Node is not installed and could not be installed: {why}")
    ensure_packages()
    return path


class DevServer(LanggraphDev):
    """`langgraph dev` serving the same graph, with the attributes of a LiveServer."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        super().__init__(root / "work", root / "data", **env)


Server = LiveServer | DevServer


def start_server(root: Path, env: dict[str, str] | None = None) -> Server:
    """Start the server under test, keeping its data under `root`."""
    if os.environ.get("CLIENT_TESTS_SERVER") == "langgraph-dev":
        return DevServer(root, env or {})
    return serve(root / "data", env=env)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Server]:
    server = start_server(tmp_path)
    yield server
    server.stop()
