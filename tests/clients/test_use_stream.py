"""Both `useStream` generations, bundled from npm, in headless Chromium on another origin.

`pages/legacy.jsx` uses the legacy hook of `@langchain/langgraph-sdk/react` (runs API),
`pages/thread.jsx` the hook of `@langchain/react` 1.x (thread-centric commands and
`stream/events`). esbuild bundles them; a static server on another loopback port serves them, so
every call to the agent server is cross-origin, as from any web app.
"""

import functools
import http.server
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from langgraph_sdk import get_sync_client
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from tests.clients.conftest import Server, start_server
from tests.clients.node import CLIENTS
from tests.integration.browser import CHROMIUM_ARGS, ensure_chromium
from tests.integration.conftest import db_rows, free_port

pytestmark = pytest.mark.integration

TIMEOUT_MS = 20_000
PAGES = ["legacy", "thread"]
CREATE = "create a high priority task to renew the passport tomorrow"

# The length of the newest answer at every DOM change, to see it grow token by token.
ANSWER_GROWTH = """
window.__answerLengths = [];
new MutationObserver(() => {
  const texts = document.querySelectorAll(".msg.ai .text");
  const last = texts[texts.length - 1];
  if (last) window.__answerLengths.push(last.textContent.length);
}).observe(document, { subtree: true, childList: true, characterData: true });
"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Keep the test output clean."""


@pytest.fixture(scope="session")
def pages_origin(node: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The bundled pages, served from their own loopback origin (not the agent server's)."""
    out = tmp_path_factory.mktemp("pages")
    built = subprocess.run(
        [node, "pages/build.mjs", str(out)], cwd=CLIENTS, capture_output=True, text=True, timeout=99
    )
    assert built.returncode == 0, built.stderr
    handler = functools.partial(QuietHandler, directory=str(out))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path, why = ensure_chromium()
    if path is None:
        pytest.skip(f"Chromium is not installed and could not be installed: {why}")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def paced(tmp_path: Path) -> Iterator[Callable[[int], Server]]:
    """Start the server under test with the offline engine paced at `ms` per token."""
    started: list[Server] = []

    def start(ms: int) -> Server:
        server = start_server(tmp_path, {"TASKAGENT_OFFLINE_TOKEN_DELAY_MS": str(ms)})
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


class ChatPage:
    """One of the two pages, as a person uses it."""

    def __init__(self, page: Page, errors: list[str]) -> None:
        self.page = page
        self.errors = errors
        self.input = page.get_by_role("textbox", name="Message")
        self.send_button = page.get_by_role("button", name="Send", exact=True)
        self.status = page.locator(".status")

    def send(self, text: str) -> None:
        expect(self.send_button).to_be_enabled()
        self.input.fill(text)
        self.input.press("Enter")

    def humans(self) -> list[str]:
        return self.page.locator(".msg.human .text").all_inner_texts()

    def last_answer(self) -> Locator:
        return self.page.locator(".msg.ai .text").last

    def wait_idle(self) -> None:
        expect(self.status).to_have_text("idle")
        expect(self.send_button).to_be_enabled()

    def thread_id(self) -> str:
        expect(self.page).to_have_url(re.compile(r"[?&]thread="))
        return self.page.url.split("thread=")[1].split("&")[0]


@pytest.fixture
def open_chat(browser: Browser, pages_origin: str) -> Iterator[Callable[[str, Server], ChatPage]]:
    expect.set_options(timeout=TIMEOUT_MS)
    contexts = []

    def open_(name: str, server: Server) -> ChatPage:
        context = browser.new_context(viewport={"width": 1200, "height": 800})
        context.set_default_timeout(TIMEOUT_MS)
        context.add_init_script(ANSWER_GROWTH)
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{pages_origin}/{name}.html?api={server.url}")
        expect(page.locator("main[data-ready=true]")).to_be_visible()
        return ChatPage(page, errors)

    yield open_
    for context in contexts:
        context.close()


def settled(read: Callable[[], object], expected: object) -> object:
    """Poll `read` until it returns `expected` (a server records a run's end just after its
    last event), for up to five seconds; return the last value read."""
    value = read()
    for _ in range(50):
        if value == expected:
            break
        time.sleep(0.1)
        value = read()
    return value


def tasks_in(server: Server) -> list[tuple[str, str]]:
    return db_rows(server, "tasks.sqlite", "SELECT id, title FROM tasks ORDER BY id")


def human_texts(values: object) -> list[str]:
    assert isinstance(values, dict)
    return [m["content"] for m in values.get("messages", []) if m["type"] == "human"]


@pytest.mark.parametrize("name", PAGES)
def test_tokens_stream_in_and_tool_calls_show(name: str, paced, open_chat) -> None:
    server = paced(20)
    chat = open_chat(name, server)
    chat.send(CREATE)
    expect(chat.page.locator(".tool-call").first).to_contain_text("create_task")
    expect(chat.last_answer()).to_contain_text('Created TASK-0001 "Renew the passport"')
    chat.wait_idle()
    lengths = [n for n in chat.page.evaluate("window.__answerLengths") if n]
    assert len(set(lengths)) > 3, f"the answer did not stream in: {lengths}"
    assert chat.humans() == [CREATE]
    assert tasks_in(server) == [("TASK-0001", "Renew the passport")]
    assert chat.errors == []


@pytest.mark.parametrize("name", PAGES)
def test_an_approval_appears_and_approving_deletes_the_task(name: str, paced, open_chat) -> None:
    server = paced(0)
    chat = open_chat(name, server)
    chat.send(CREATE)
    expect(chat.last_answer()).to_contain_text("Created TASK-0001")
    chat.wait_idle()
    chat.send("delete TASK-0001")
    approval = chat.page.locator(".interrupt")
    expect(approval).to_contain_text("delete_task")
    expect(approval).to_contain_text("TASK-0001")
    assert tasks_in(server) == [("TASK-0001", "Renew the passport")]  # nothing before the answer
    approval.get_by_role("button", name="Approve").click()
    expect(chat.last_answer()).to_contain_text('Deleted TASK-0001 "Renew the passport"')
    expect(approval).to_have_count(0)
    chat.wait_idle()
    assert tasks_in(server) == []
    client = get_sync_client(url=server.url)
    tid = chat.thread_id()
    # langgraph dev marks a thread stopped mid-step `interrupted` (it has next steps); either
    # way it is no longer busy and takes the next message.
    assert client.threads.get(tid)["status"] in ("idle", "interrupted")
    expect(chat.send_button).to_be_enabled()
    assert chat.errors == []


@pytest.mark.parametrize("name", PAGES)
def test_stop_cancels_the_run_on_the_server(name: str, paced, open_chat) -> None:
    server = paced(300)
    chat = open_chat(name, server)
    chat.send(CREATE)
    expect(chat.last_answer()).to_contain_text("Created")
    chat.page.get_by_role("button", name="Stop").click()
    chat.wait_idle()
    client = get_sync_client(url=server.url)
    tid = chat.thread_id()
    [run] = client.runs.list(tid)
    status = settled(lambda: client.runs.get(tid, run["run_id"])["status"], "interrupted")
    assert status == "interrupted"
    stopped_at = chat.last_answer().inner_text()
    assert "high priority" not in stopped_at  # the end of the answer never came
    chat.page.wait_for_timeout(1500)  # a run still going would have added tokens by now
    assert chat.last_answer().inner_text() == stopped_at
    # langgraph dev marks a thread stopped mid-step `interrupted` (it has next steps); either
    # way it is no longer busy and takes the next message.
    assert client.threads.get(tid)["status"] in ("idle", "interrupted")
    expect(chat.send_button).to_be_enabled()
    assert chat.errors == []


@pytest.mark.parametrize("name", PAGES)
def test_reload_rejoins_the_running_run_then_shows_the_finished_thread(
    name: str, paced, open_chat
) -> None:
    server = paced(120)
    chat = open_chat(name, server)
    chat.send(CREATE)
    expect(chat.last_answer()).to_contain_text("Created")
    tid = chat.thread_id()
    chat.page.reload()
    # The run kept going on the server; the reloaded page follows it to the end.
    expect(chat.page.locator(".msg.human .text")).to_have_text([CREATE])
    expect(chat.last_answer()).to_contain_text('Created TASK-0001 "Renew the passport"')
    chat.wait_idle()
    client = get_sync_client(url=server.url)
    [run] = client.runs.list(tid)
    assert settled(lambda: client.runs.get(tid, run["run_id"])["status"], "success") == "success"
    assert tasks_in(server) == [("TASK-0001", "Renew the passport")]

    chat.page.reload()
    expect(chat.page.locator(".msg.human .text")).to_have_text([CREATE])
    expect(chat.last_answer()).to_contain_text('Created TASK-0001 "Renew the passport"')
    assert chat.thread_id() == tid
    assert len(client.runs.list(tid)) == 1
    assert chat.errors == []


@pytest.mark.parametrize("name", PAGES)
def test_editing_a_message_branches_from_its_checkpoint(name: str, paced, open_chat) -> None:
    server = paced(0)
    chat = open_chat(name, server)
    chat.send("create a task to buy milk")
    expect(chat.last_answer()).to_contain_text('Created TASK-0001 "Buy milk"')
    chat.wait_idle()
    chat.send("list my tasks")
    expect(chat.last_answer()).to_contain_text("Buy milk")
    chat.wait_idle()
    tid = chat.thread_id()
    client = get_sync_client(url=server.url)
    before = client.threads.get_state(tid)

    chat.page.locator(".msg.human").first.get_by_role("button", name="Edit").click()
    chat.page.get_by_role("textbox", name="Edit message").fill("create a task to buy bread")
    chat.page.get_by_role("button", name="Save").click()
    expect(chat.page.locator(".msg.human .text")).to_have_text(["create a task to buy bread"])
    expect(chat.last_answer()).to_contain_text('Created TASK-0002 "Buy bread"')
    chat.wait_idle()

    # The new branch starts from the edited message's parent checkpoint: the head holds only
    # the edited turn, and the old turns are still in the thread's history.
    head = client.threads.get_state(tid)
    assert human_texts(head["values"]) == ["create a task to buy bread"]
    history = client.threads.get_history(tid, limit=100)
    seen = {tuple(human_texts(h["values"])) for h in history}
    assert ("create a task to buy milk", "list my tasks") in seen
    assert ("create a task to buy bread",) in seen
    ids = {h["checkpoint"]["checkpoint_id"] for h in history}
    assert before["checkpoint"]["checkpoint_id"] in ids
    assert tasks_in(server) == [("TASK-0001", "Buy milk"), ("TASK-0002", "Buy bread")]

    if name == "legacy":
        # The legacy hook shows both branches and switches between them.
        switcher = chat.page.locator(".msg.human .branches").first
        expect(switcher.locator(".branch-at")).to_have_text("2 / 2")
        switcher.get_by_role("button", name="Previous branch").click()
        expect(chat.page.locator(".msg.human .text")).to_have_text(
            ["create a task to buy milk", "list my tasks"]
        )
    assert chat.errors == []
