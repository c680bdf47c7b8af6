"""Web pages attacking the keyless server through the user's own browser, in real Chromium.

Without keys the server is the local admin for whatever reaches loopback, and any page the
user opens can send requests there. Each test stages the attack the way a hostile page
would run it and then reads the task database:

- DNS rebinding: Chromium resolves evil.example to 127.0.0.1 (`--host-resolver-rules`), so a
  page on evil.example talks to the server as its own origin, but sends `Host: evil.example`.
- Cross-site writes: a page served by a second local web server (another origin) submits
  a form and a `no-cors` fetch to `POST /tasks/{id}/complete`, and frames the chat page.
- The chat page itself: it must still work end to end under its strict CSP, with no
  violation reported, while an injected inline script is refused.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from tests.integration.browser import CHROMIUM_ARGS, ChatPage, ensure_chromium
from tests.integration.conftest import LiveServer, free_port

pytestmark = pytest.mark.integration

TIMEOUT_MS = 15_000
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
    "object-src 'none'"
)
REBINDING_NAME = "evil.example"
TITLES = ["Pay rent", "Renew passport", "Water plants"]
# The hostile page: a form POST into a hidden frame, a no-cors fetch, and a framed chat page.
ATTACK_PAGE = """<!doctype html>
<title>You won a prize</title>
<iframe name="sink"></iframe>
<iframe id="framed"></iframe>
<form id="form" method="POST" target="sink"></form>
<script>
const victim = new URLSearchParams(location.search).get("victim");
function settle(frame, start) {
  return new Promise(resolve => {
    frame.addEventListener("load", () => resolve("loaded"), { once: true });
    setTimeout(() => resolve("timed out"), 5000);
    start();
  });
}
window.attack = (async () => {
  const sent = {};
  try {
    await fetch(victim + "/tasks/TASK-0001/complete", { method: "POST", mode: "no-cors" });
    sent.fetch = "answered";
  } catch (error) {
    sent.fetch = "failed: " + error;
  }
  const form = document.getElementById("form");
  form.action = victim + "/tasks/TASK-0002/complete";
  sent.form = await settle(document.querySelector("iframe[name=sink]"), () => form.submit());
  const framed = document.getElementById("framed");
  sent.frame = await settle(framed, () => { framed.src = victim + "/"; });
  return sent;
})();
</script>
"""


class AttackSite:
    """A second local web server: the origin the hostile page is served from."""

    def __init__(self, port: int) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = ATTACK_PAGE.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.port = port
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, host: str, victim: str) -> str:
        """The attack page as served under `host`, aimed at `victim`."""
        return f"http://{host}:{self.port}/prize?victim={victim}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def statuses(data_dir: Path) -> dict[str, str]:
    with closing(sqlite3.connect(f"file:{data_dir / 'tasks.sqlite'}?mode=ro", uri=True)) as db:
        return dict(db.execute("SELECT id, status FROM tasks ORDER BY id").fetchall())


def seed(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for title in TITLES:
            assert client.post("/tasks", json={"title": title}).status_code == 201


ALL_PENDING = {f"TASK-{n:04d}": "pending" for n in range(1, len(TITLES) + 1)}


@pytest.fixture(scope="module")
def attack_site() -> Iterator[AttackSite]:
    site = AttackSite(free_port())
    yield site
    site.close()


@pytest.fixture(scope="module")
def victim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The keyless default server with three pending tasks."""
    server = LiveServer(tmp_path_factory.mktemp("victim") / "data")
    seed(server)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A keyless server that trusts Studio's origin only, not the loopback pages of the default."""
    env = {"TASKAGENT_ALLOWED_ORIGINS": "https://smith.langchain.com"}
    server = LiveServer(tmp_path_factory.mktemp("strict") / "data", env=env)
    seed(server)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def configured(
    tmp_path_factory: pytest.TempPathFactory, attack_site: AttackSite
) -> Iterator[LiveServer]:
    """A server that names its own host, trusts the attack site's `localhost` origin, has docs."""
    env = {
        "TASKAGENT_ALLOWED_HOSTS": "tasks.example.test,*.corp.test",
        "TASKAGENT_ALLOWED_ORIGINS": f"http://localhost:{attack_site.port}",
        "TASKAGENT_API_DOCS": "true",
    }
    server = LiveServer(tmp_path_factory.mktemp("configured") / "data", env=env)
    seed(server)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path, why = ensure_chromium()
    if path is None:
        pytest.skip(f"Chromium is not installed and could not be installed: {why}")
    args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {REBINDING_NAME} 127.0.0.1"]
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=args)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    yield context.new_page()
    context.close()


# --- DNS rebinding -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:{port}",
        "localhost.evil.example:{port}",
        "127.0.0.1.nip.io:{port}",
        "tasks.example.test",
    ],
)
def test_a_request_naming_a_foreign_host_is_refused_and_changes_nothing(
    victim: LiveServer, host: str
) -> None:
    headers = {"Host": host.format(port=victim.port)}
    with httpx.Client(base_url=victim.url, headers=headers, timeout=30) as client:
        listed = client.get("/tasks")
        completed = client.post("/tasks/TASK-0001/complete")
        page = client.get("/")
    for refused in (listed, completed, page):
        assert refused.status_code == 400
        assert "is not a name this server answers to" in refused.json()["detail"]
        assert "TASKAGENT_ALLOWED_HOSTS" in refused.json()["detail"]
    assert "Pay rent" not in listed.text
    assert statuses(victim.data_dir) == ALL_PENDING


@pytest.mark.parametrize(
    "host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}", "chat.localhost:{port}"]
)
def test_loopback_names_still_reach_the_server(victim: LiveServer, host: str) -> None:
    headers = {"Host": host.format(port=victim.port)}
    with httpx.Client(base_url=victim.url, headers=headers, timeout=30) as client:
        assert client.get("/health").status_code == 200
        assert [t["title"] for t in client.get("/tasks").json()["tasks"]] == TITLES


def test_configured_host_names_are_accepted(configured: LiveServer) -> None:
    with httpx.Client(base_url=configured.url, timeout=30) as client:
        for host in ("tasks.example.test", "TASKS.example.test:8443", "eu.corp.test"):
            assert client.get("/health", headers={"Host": host}).status_code == 200
        assert client.get("/health", headers={"Host": "corp.test"}).status_code == 400


def test_a_rebinding_page_in_a_real_browser_reads_and_changes_nothing(
    victim: LiveServer, page: Page
) -> None:
    # Chromium resolves evil.example to 127.0.0.1: the page's own origin is the server.
    response = page.goto(f"http://{REBINDING_NAME}:{victim.port}/")
    seen = page.evaluate(
        """async () => {
          const listed = await fetch("/tasks");
          const completed = await fetch("/tasks/TASK-0003/complete", { method: "POST" });
          return { listed: listed.status, body: await listed.text(), completed: completed.status };
        }"""
    )
    assert statuses(victim.data_dir) == ALL_PENDING
    assert seen["listed"] == 400 and seen["completed"] == 400, seen
    assert "Pay rent" not in seen["body"]
    # Nor does the chat page load under the rebinding name.
    assert response is not None and response.status == 400
    expect(page.locator("body")).to_contain_text("is not a name this server answers to")
    expect(page.locator("#composer")).to_have_count(0)


# --- Cross-site writes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "attacker_host"),
    [("victim", REBINDING_NAME), ("strict", "127.0.0.1"), ("strict", "localhost")],
)
def test_a_page_on_another_origin_cannot_complete_tasks_or_frame_the_chat(
    target: str,
    attack_site: AttackSite,
    page: Page,
    attacker_host: str,
    request: pytest.FixtureRequest,
) -> None:
    # Loopback pages of any port are allowed by default (chat UIs run there), so the default
    # server is attacked from a page elsewhere, and one that trusts Studio only from loopback
    # pages: 127.0.0.1:<other port> is the same site as the server, localhost a cross-site one.
    victim: LiveServer = request.getfixturevalue(target)
    page.goto(attack_site.url(attacker_host, victim.url))
    sent = page.evaluate("window.attack")
    assert sent == {"fetch": "answered", "form": "loaded", "frame": "loaded"}
    assert statuses(victim.data_dir) == ALL_PENDING
    log = "".join(victim.output)
    for task in ("TASK-0001", "TASK-0002"):
        assert f"refused POST /tasks/{task}/complete" in log
    # The framed chat page: the browser shows its own error page instead of the composer.
    framed = page.frame_locator("#framed")
    expect(framed.locator("#composer")).to_have_count(0)


def test_a_page_on_an_allowed_origin_may_write(
    configured: LiveServer, attack_site: AttackSite, page: Page
) -> None:
    page.goto(attack_site.url("localhost", configured.url))
    sent = page.evaluate("window.attack")
    assert sent["fetch"] == "answered", sent
    after = statuses(configured.data_dir)
    assert {task: after[task] for task in ALL_PENDING} == {
        "TASK-0001": "completed",
        "TASK-0002": "completed",
        "TASK-0003": "pending",
    }


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "https://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:1"}, 403),
        ({"Origin": "http://127.0.0.1:{port}"}, 200),
        ({"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:{port}"}, 200),
        ({}, 200),
    ],
)
def test_writes_labelled_as_cross_site_are_refused_with_a_sentence(
    configured: LiveServer, headers: dict[str, str], status: int
) -> None:
    sent = {k: v.format(port=configured.port) for k, v in headers.items()}
    with httpx.Client(base_url=configured.url, timeout=30) as client:
        # Created without browser labels, as curl or the SDK would.
        made = [client.post("/tasks", json={"title": "Target"}).json()["id"] for _ in range(2)]
        before = statuses(configured.data_dir)
        completed = client.post(f"/tasks/{made[0]}/complete", headers=sent)
        deleted = client.delete(f"/tasks/{made[1]}", headers=sent)
    after = statuses(configured.data_dir)
    assert (completed.status_code, deleted.status_code) == (status, status), completed.text
    if status == 403:
        assert "from a web page on another site" in completed.json()["detail"]
        assert "TASKAGENT_ALLOWED_ORIGINS" in deleted.json()["detail"]
        assert after == before
    else:
        assert after[made[0]] == "completed" and made[1] not in after


# --- The chat page under its CSP, and the headers --------------------------------------------


def test_the_chat_page_works_under_its_csp_and_refuses_inline_script(
    victim: LiveServer, page: Page
) -> None:
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.add_init_script(
        """window.__violations = [];
        document.addEventListener("securitypolicyviolation",
          (e) => window.__violations.push(e.violatedDirective + " " + e.blockedURI));"""
    )
    response = page.goto(f"{victim.url}/")
    assert response is not None and response.headers["content-security-policy"] == PAGE_CSP
    chat = ChatPage(page)
    chat.send("create a task to call the plumber")
    expect(chat.answer_text()).to_have_text(
        'Created TASK-0004 "Call the plumber" (normal priority).'
    )
    chat.wait_finished()
    expect(chat.threads).to_have_count(1)
    assert statuses(victim.data_dir)["TASK-0004"] == "pending"
    assert page.evaluate("window.__violations") == []
    assert problems == []

    # The policy is really enforced: an injected inline script does not run.
    page.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.__inline = true";
          document.head.append(script);
        }"""
    )
    page.wait_for_function("window.__violations.length > 0")
    assert page.evaluate("window.__inline === undefined")
    assert page.evaluate("window.__violations") == ["script-src-elem inline"]


@pytest.mark.parametrize(
    "path", ["/", "/static/chat.js", "/static/chat.css", "/health", "/tasks", "/nowhere"]
)
def test_every_answer_carries_the_security_headers(victim: LiveServer, path: str) -> None:
    answer = httpx.get(f"{victim.url}{path}", timeout=30)
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["content-security-policy"] == PAGE_CSP


def test_api_docs_are_off_by_default_and_the_spec_stays(
    victim: LiveServer, configured: LiveServer
) -> None:
    with httpx.Client(base_url=victim.url, timeout=30) as client:
        for path in ("/docs", "/redoc"):
            answer = client.get(path)
            assert answer.status_code == 404
            assert "cdn" not in answer.text.lower()
        spec = client.get("/openapi.json")
        assert spec.status_code == 200 and "/tasks/{task_id}/complete" in spec.json()["paths"]
    # TASKAGENT_API_DOCS=true turns Swagger UI on (it needs its CDN, so the page CSP is off).
    docs = httpx.get(f"{configured.url}/docs", timeout=30)
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    assert "content-security-policy" not in docs.headers
    assert docs.headers["x-frame-options"] == "DENY"
