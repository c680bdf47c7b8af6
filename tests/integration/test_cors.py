"""Browser access: web pages on allowed origins call the API (CORS), others cannot.

A chat UI on another loopback port and LangGraph Studio call the server straight from the
browser. The page here is served by a second local web server, its scripts run in real
headless Chromium (Chromium resolves evil.example to 127.0.0.1, so the same page also stands
for a site nobody listed), and every effect is read back from the server's databases.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.integration.browser import CHROMIUM_ARGS, ensure_chromium
from tests.integration.conftest import LiveServer, free_port

pytestmark = pytest.mark.integration

TIMEOUT_MS = 15_000
ALICE, BOB = "k-alice-cors-0001", "k-bob-cors-0002"
KEYS = f"{ALICE}:alice:write,{BOB}:bob:write"
UNLISTED = "evil.example"
STUDIO = "https://smith.langchain.com"
# What Studio, the JS SDK and agent-chat-ui send besides the safelisted headers.
CLIENT_HEADERS = (
    "x-api-key,authorization,x-auth-scheme,content-type,idempotency-key,last-event-id,"
    "langsmith-trace,baggage"
)
BUY_MILK = {"input": {"messages": [{"role": "user", "content": "add a task to buy milk"}]}}
PAGE = b"<!doctype html><title>another origin</title><p>a page on another origin</p>"


class PageSite:
    """A second local web server: the origin the calling page is served from."""

    def __init__(self, port: int) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(PAGE)))
                self.end_headers()
                self.wfile.write(PAGE)

            def log_message(self, *args: object) -> None:
                pass

        self.port = port
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, host: str) -> str:
        """The page as served under `host`."""
        return f"http://{host}:{self.port}/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def tasks_of(data_dir: Path) -> list[tuple[str, str]]:
    """(owner, title) of every task, read from the database."""
    with closing(sqlite3.connect(f"file:{data_dir / 'tasks.sqlite'}?mode=ro", uri=True)) as db:
        return db.execute("SELECT owner, title FROM tasks ORDER BY seq").fetchall()


def thread_count(server: LiveServer, key: str | None = None) -> int:
    headers = {"X-Api-Key": key} if key else {}
    answer = httpx.post(
        f"{server.url}/threads/search", json={"limit": 1000}, headers=headers, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return len(answer.json())


def preflight(server: LiveServer, origin: str, **extra: str) -> httpx.Response:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": CLIENT_HEADERS,
        **extra,
    }
    return httpx.options(f"{server.url}/threads", headers=headers, timeout=30)


def cors_headers(answer: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in answer.headers.items() if k.lower().startswith("access-control-")}


@pytest.fixture(scope="module")
def keyless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The default server: no keys, the default allow-list."""
    server = LiveServer(tmp_path_factory.mktemp("keyless") / "data")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with two users' keys, the default allow-list."""
    server = LiveServer(tmp_path_factory.mktemp("keyed") / "data", env={"TASKAGENT_API_KEYS": KEYS})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def site() -> Iterator[PageSite]:
    served = PageSite(free_port())
    yield served
    served.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path, why = ensure_chromium()
    if path is None:
        pytest.skip(f"Chromium is not installed and could not be installed: {why}")
    args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {UNLISTED} 127.0.0.1"]
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=args)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    yield context.new_page()
    context.close()


# The page's script: fetch from the page's origin, report what its JavaScript can read.
CALL = """async ([url, init]) => {
  try {
    const response = await fetch(url, init);
    const headers = {};
    for (const name of ["Content-Location", "Location", "X-Request-ID"]) {
      headers[name] = response.headers.get(name);
    }
    return { status: response.status, body: await response.text(), headers };
  } catch (error) {
    return { failed: String(error) };
  }
}"""


def call(page: Page, url: str, method: str = "GET", **init: Any) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(CALL, [url, {"method": method, **init}])
    return result


# --- In the browser ------------------------------------------------------------------------


def test_a_page_on_another_loopback_port_runs_the_agent_with_its_key(
    keyed: LiveServer, site: PageSite, page: Page
) -> None:
    page.goto(site.url("localhost"))
    alice = {"x-api-key": ALICE, "content-type": "text/plain;charset=UTF-8"}
    made = call(
        page,
        f"{keyed.url}/threads",
        "POST",
        headers=alice,
        body='{"metadata": {"from": "page"}}',
    )
    assert made.get("status") == 200, made
    thread_id = json.loads(made["body"])["thread_id"]

    ran = call(
        page,
        f"{keyed.url}/threads/{thread_id}/runs/wait",
        "POST",
        headers=alice,
        body=json.dumps({"assistant_id": "agent", **BUY_MILK}),
    )
    assert ran.get("status") == 200, ran
    # The headers a client follows are readable from the page's JavaScript.
    location = ran["headers"]["Content-Location"]
    assert location.startswith(f"/threads/{thread_id}/runs/"), ran["headers"]
    assert ran["headers"]["Location"] == f"{location}/join"
    assert ran["headers"]["X-Request-ID"]
    assert tasks_of(keyed.data_dir) == [("alice", "Buy milk")]
    thread = httpx.get(f"{keyed.url}/threads/{thread_id}", headers={"X-Api-Key": ALICE})
    assert thread.json()["metadata"]["from"] == "page"

    # Another user's key, from the same page, reads a 404 (readable: the origin is allowed).
    theirs = call(page, f"{keyed.url}/threads/{thread_id}", headers={"x-api-key": BOB})
    assert theirs.get("status") == 404, theirs
    assert "not found" in theirs["body"]


def test_a_page_on_an_unlisted_origin_can_neither_read_nor_write(
    keyless: LiveServer, site: PageSite, page: Page
) -> None:
    mine = httpx.post(f"{keyless.url}/threads", json={"metadata": {"secret": "s3"}}).json()
    before = thread_count(keyless)
    page.goto(site.url(UNLISTED))
    json_post = call(
        page,
        f"{keyless.url}/threads",
        "POST",
        headers={"content-type": "application/json"},
        body='{"metadata": {"from": "evil"}}',
    )
    # A "simple" request needs no preflight: the browser sends it and hides the answer.
    simple_post = call(page, f"{keyless.url}/threads", "POST", body='{"metadata": {}}')
    read = call(page, f"{keyless.url}/threads/{mine['thread_id']}")
    for refused in (json_post, simple_post, read):
        assert "failed" in refused and "Failed to fetch" in refused["failed"], refused
    assert thread_count(keyless) == before
    assert "refused POST /threads" in "".join(keyless.output)

    # The same page on a loopback origin (allowed by default) does both.
    page.goto(site.url("127.0.0.1"))
    allowed = call(page, f"{keyless.url}/threads", "POST", body='{"metadata": {}}')
    assert allowed.get("status") == 200, allowed
    assert thread_count(keyless) == before + 1


# --- Over HTTP -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:3000",
        "http://127.0.0.1:5173",
        "http://[::1]:8080",
        "http://localhost",
        STUDIO,
    ],
)
def test_preflights_from_allowed_origins_allow_every_client_header_and_private_network(
    keyless: LiveServer, origin: str
) -> None:
    answer = preflight(keyless, origin, **{"Access-Control-Request-Private-Network": "true"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == origin
    assert answer.headers["access-control-allow-headers"] == CLIENT_HEADERS
    methods = set(answer.headers["access-control-allow-methods"].split(", "))
    assert {"GET", "POST", "PUT", "PATCH", "DELETE"} <= methods
    assert answer.headers["access-control-allow-private-network"] == "true"
    assert "access-control-allow-credentials" not in answer.headers  # keys, never cookies
    # Without the Private Network Access question, no such answer.
    plain = preflight(keyless, origin)
    assert plain.status_code == 200
    assert "access-control-allow-private-network" not in plain.headers


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://localhost.evil.example:3000",
        "https://smith.langchain.com.evil.example",
        "https://localhost:3000",
        "null",
    ],
)
def test_unlisted_origins_get_no_cors_answer_and_change_nothing(
    keyless: LiveServer, origin: str
) -> None:
    before = thread_count(keyless)
    answer = preflight(keyless, origin, **{"Access-Control-Request-Private-Network": "true"})
    assert answer.status_code == 400
    assert "TASKAGENT_ALLOWED_ORIGINS" in answer.text
    assert cors_headers(answer) == {}
    write = httpx.post(
        f"{keyless.url}/threads",
        content=b"{}",
        headers={"Origin": origin, "Content-Type": "text/plain"},
        timeout=30,
    )
    assert write.status_code == 403
    assert "from a web page on another site" in write.json()["detail"]
    assert cors_headers(write) == {}
    read = httpx.get(f"{keyless.url}/ok", headers={"Origin": origin}, timeout=30)
    assert read.status_code == 200 and cors_headers(read) == {}
    assert thread_count(keyless) == before


def test_answers_to_allowed_origins_expose_the_headers_clients_read(keyless: LiveServer) -> None:
    answer = httpx.post(
        f"{keyless.url}/threads/search", json={}, headers={"Origin": STUDIO}, timeout=30
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == STUDIO
    exposed = {
        h.strip().lower() for h in answer.headers["access-control-expose-headers"].split(",")
    }
    assert {"content-location", "location", "x-pagination-total", "x-pagination-next"} <= exposed


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain;charset=UTF-8"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {},  # no Content-Type at all
    ],
)
def test_json_bodies_are_read_whatever_their_content_type(
    keyless: LiveServer, headers: dict[str, str]
) -> None:
    made = httpx.post(
        f"{keyless.url}/threads",
        content=b'{"metadata": {"sent_as": "text"}}',
        headers=headers,
        timeout=30,
    )
    assert made.status_code == 200, made.text
    assert made.json()["metadata"] == {"sent_as": "text"}
    found = httpx.get(f"{keyless.url}/threads/{made.json()['thread_id']}", timeout=30)
    assert found.json()["metadata"] == {"sent_as": "text"}


def test_a_text_plain_run_acts_and_text_plain_nonsense_is_a_422_that_changes_nothing(
    keyless: LiveServer,
) -> None:
    text = {"Content-Type": "text/plain"}
    made = httpx.post(f"{keyless.url}/threads", content=b"{}", headers=text, timeout=30)
    thread_id = made.json()["thread_id"]
    body = json.dumps({"assistant_id": "agent", **BUY_MILK}).encode()
    ran = httpx.post(
        f"{keyless.url}/threads/{thread_id}/runs/wait", content=body, headers=text, timeout=60
    )
    assert ran.status_code == 200, ran.text
    done = tasks_of(keyless.data_dir)
    assert done.count(("local", "Buy milk")) == 1
    before = thread_count(keyless)
    cut = b'{"assistant_id": "agent", "input": '
    broken = httpx.post(
        f"{keyless.url}/threads/{thread_id}/runs/wait", content=cut, headers=text, timeout=30
    )
    assert broken.status_code == 422
    where = len(cut)
    assert broken.json() == {
        "detail": f"The request body is not valid JSON (Expecting value at character {where})."
    }
    refused = httpx.post(f"{keyless.url}/threads", content=b"{nope", headers=text, timeout=30)
    assert refused.status_code == 422 and "not valid JSON" in refused.json()["detail"]
    assert thread_count(keyless) == before
    assert tasks_of(keyless.data_dir) == done
    assert len(httpx.get(f"{keyless.url}/threads/{thread_id}/runs", timeout=30).json()) == 1


def test_x_auth_scheme_never_stands_in_for_a_key(keyed: LiveServer) -> None:
    before = thread_count(keyed, ALICE)
    for scheme in ("langsmith", "langsmith-api-key"):
        made = httpx.post(
            f"{keyed.url}/threads",
            json={"metadata": {"scheme": scheme}},
            headers={"x-auth-scheme": scheme, "X-Api-Key": ALICE, "Origin": STUDIO},
            timeout=30,
        )
        assert made.status_code == 200, made.text
        thread_id = made.json()["thread_id"]
        # Alice's thread, whatever the scheme said: Bob cannot see it.
        assert httpx.get(
            f"{keyed.url}/threads/{thread_id}", headers={"X-Api-Key": ALICE}
        ).is_success
        assert (
            httpx.get(f"{keyed.url}/threads/{thread_id}", headers={"X-Api-Key": BOB}).status_code
            == 404
        )
    bearer = httpx.post(
        f"{keyed.url}/threads",
        json={},
        headers={"x-auth-scheme": "langsmith", "Authorization": f"Bearer {BOB}"},
        timeout=30,
    )
    assert bearer.status_code == 200  # a key of this server, sent as a bearer token
    # What `langgraph dev` lets in as its Studio user is refused here, with the way in.
    for headers in (
        {"x-auth-scheme": "langsmith"},
        {"x-auth-scheme": "langsmith", "Authorization": "Bearer eyJhbGciOi.langsmith.jwt"},
    ):
        refused = httpx.post(
            f"{keyed.url}/threads", json={}, headers={**headers, "Origin": STUDIO}, timeout=30
        )
        assert refused.status_code == 401
        detail = refused.json()["detail"]
        assert "x-auth-scheme: langsmith" in detail and "X-Api-Key: <key>" in detail
        # A browser page on Studio reads the refusal too.
        assert refused.headers["access-control-allow-origin"] == STUDIO
    assert thread_count(keyed, ALICE) == before + 2
