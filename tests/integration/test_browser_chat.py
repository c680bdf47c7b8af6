"""The chat page's conversation tools in real headless Chromium against the real server.

Approvals in plain words, stop, markdown, retry, the thread list, the task panel, dark mode,
phone width and an axe-core audit: each judged by what the page shows and what the database holds.
"""

import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Dialog,
    Page,
    Route,
    expect,
    sync_playwright,
)

from tests.clients.node import ensure_node, ensure_packages
from tests.integration.browser import CHROMIUM_ARGS, ChatPage, ensure_chromium
from tests.integration.conftest import REPO, LiveServer

pytestmark = pytest.mark.integration

TIMEOUT_MS = 15_000
XSS = "<img src=x onerror=alert(1)>"
SCREENSHOTS = REPO / "docs" / "screenshots"
# Records every text the live region takes, to show it is not read out token by token.
ANNOUNCE_RECORDER = """() => {
  window.__announced = [];
  const region = document.getElementById("announcer");
  new MutationObserver(() => window.__announced.push(region.textContent))
    .observe(region, { childList: true, characterData: true, subtree: true });
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path, why = ensure_chromium()
    if path is None:
        pytest.skip(f"Chromium is not installed and could not be installed: {why}")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Opened:
    """Pages opened by a test; each must end without dialogs or script errors."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.contexts: list[BrowserContext] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []

    def __call__(
        self, base_url: str, width: int = 1280, height: int = 800, dark: bool = False
    ) -> Page:
        context = self.browser.new_context(
            base_url=base_url,
            viewport={"width": width, "height": height},
            color_scheme="dark" if dark else "light",
        )
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        page = context.new_page()
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        return page

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Opened]:
    expect.set_options(timeout=TIMEOUT_MS)
    opened = Opened(browser)
    yield opened
    for context in opened.contexts:
        context.close()
    assert opened.dialogs == [], f"the page opened dialogs: {opened.dialogs}"
    assert opened.errors == [], f"the page threw: {opened.errors}"


def task_rows(server: LiveServer) -> dict[str, tuple[str, str]]:
    """The tasks table as stored: id -> (title, status)."""
    with sqlite3.connect(server.data_dir / "tasks.sqlite") as db:
        rows = db.execute("SELECT id, title, status FROM tasks").fetchall()
    return {row[0]: (row[1], row[2]) for row in rows}


def create(server: LiveServer, title: str, **fields: str) -> str:
    made = httpx.post(f"{server.url}/tasks", json={"title": title, **fields}, timeout=10)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def ask(chat: ChatPage, text: str) -> None:
    chat.send(text)
    chat.wait_finished()


def test_approvals_by_words_and_buttons(open_page: Opened, live_server: LiveServer) -> None:
    for title in ("Buy milk", "Call mom", "Pay rent"):
        create(live_server, title)
    page = open_page(live_server.url)
    chat = ChatPage(page)
    page.goto("/")
    page.evaluate(ANNOUNCE_RECORDER)

    chat.send("delete TASK-0001")
    approval = page.locator(".approval").last
    expect(approval.locator(".question")).to_have_text('Delete TASK-0001 "Buy milk"?')
    expect(approval.get_by_role("button", name="Keep it")).to_be_enabled()
    expect(chat.threads.first.locator(".status")).to_have_text("needs your answer")
    announcer = page.get_by_role("status")
    expect(announcer).to_have_text(re.compile(r'^Needs your answer: Delete TASK-0001 "Buy milk"\?'))
    # Anything but an answer is refused in a plain sentence; the typed text stays.
    chat.input.fill("what is the weather")
    chat.input.press("Enter")
    notice = page.locator("#notice")
    expect(notice).to_contain_text("waiting for your answer")
    expect(notice).not_to_contain_text("resume")
    expect(chat.input).to_have_value("what is the weather")
    expect(page.locator(".msg.user")).to_have_text(["delete TASK-0001"])
    chat.input.fill("yes")
    chat.input.press("Enter")
    expect(chat.answer_text()).to_have_text('Deleted TASK-0001 "Buy milk".')
    chat.wait_finished()
    expect(announcer).to_have_text('Answer: Deleted TASK-0001 "Buy milk".')
    expect(approval.get_by_role("button", name="Delete it")).to_be_disabled()
    assert "TASK-0001" not in task_rows(live_server)
    expect(chat.threads.first.locator(".status")).to_have_count(0)

    chat.send("delete TASK-0002")
    expect(page.locator(".approval").last.locator(".question")).to_contain_text("TASK-0002")
    ask(chat, "no")
    assert task_rows(live_server)["TASK-0002"] == ("Call mom", "pending")

    question = page.locator(".approval:not(.answered)")
    chat.send("delete TASK-0003")
    expect(question.locator(".question")).to_contain_text("TASK-0003")
    question.get_by_role("button", name="Keep it").click()
    chat.wait_finished()
    expect(question).to_have_count(0)
    assert "TASK-0003" in task_rows(live_server)
    chat.send("delete TASK-0003")
    expect(question.locator(".question")).to_contain_text("TASK-0003")
    question.get_by_role("button", name="Delete it").click()
    expect(chat.answer_text()).to_have_text('Deleted TASK-0003 "Pay rent".')
    chat.wait_finished()
    assert sorted(task_rows(live_server)) == ["TASK-0002"]
    # The task panel followed every change.
    expect(page.locator("#task-list .task-title")).to_have_text(["Call mom"])
    # The live region spoke once per finished answer or question, never per token.
    expect(announcer).to_have_text('Answer: Deleted TASK-0003 "Pay rent".')
    said = [text for text in page.evaluate("window.__announced") if text]
    assert [text.split(":")[0] for text in said] == ["Needs your answer", "Answer"] * 4, said


def test_stop_cancels_the_answer_and_the_chat_goes_on(open_page: Opened, tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "data", env={"TASKAGENT_OFFLINE_TOKEN_DELAY_MS": "60"})
    try:
        for n in range(8):
            create(server, f"Errand number {n + 1}")
        before = task_rows(server)
        page = open_page(server.url)
        chat = ChatPage(page)
        page.goto("/")
        stop = page.get_by_role("button", name="Stop")
        expect(stop).to_be_hidden()
        chat.send("list my tasks")
        expect(chat.answer_text()).to_contain_text("TASK-0001")
        stop.click()
        expect(stop).to_be_hidden()
        expect(chat.send_button).to_be_enabled()
        expect(chat.answer().locator(".badge.stopped")).to_have_text("stopped")
        expect(page.locator(".error")).to_have_count(0)
        shown = chat.answer_text().text_content() or ""
        assert "TASK-0008" not in shown, shown
        page.wait_for_timeout(800)  # a run that was not stopped would keep writing
        assert (chat.answer_text().text_content() or "") == shown
        thread_id = page.evaluate("localStorage.getItem('taskagent.thread')")
        runs = httpx.get(f"{server.url}/threads/{thread_id}/runs", timeout=10).json()
        assert [run["status"] for run in runs] == ["interrupted"], runs
        assert task_rows(server) == before

        # Esc stops too; the composer keeps working afterwards.
        chat.send("list my tasks")
        expect(chat.answer_text()).to_contain_text("TASK-0001")
        chat.input.press("Escape")
        expect(chat.send_button).to_be_enabled()
        ask(chat, "create a task to water the plants")
        expect(chat.answer_text()).to_contain_text('"Water the plants"')
        assert len(task_rows(server)) == 9
    finally:
        server.stop()


def test_markdown_renders_and_html_never_runs(open_page: Opened, tmp_path: Path) -> None:
    from tests.fakes.llm_servers import FakeOpenAIServer, text

    answer = (
        "Here is **the plan**:\n\n- first `step`\n- second step\n\n"
        f"{XSS} and [a link](javascript:alert(2))"
    )
    with FakeOpenAIServer() as fake:
        fake.script(text(answer))
        server = LiveServer(tmp_path / "data", env={"OPENAI_BASE_URL": fake.base_url})
        try:
            create(server, XSS, priority="high")
            page = open_page(server.url)
            chat = ChatPage(page)
            page.goto("/")
            ask(chat, f"**not bold** {XSS}")
            text_node = chat.answer_text()
            expect(text_node.locator("strong")).to_have_text("the plan")
            expect(text_node.locator("li")).to_have_text(["first step", "second step"])
            expect(text_node.locator("code")).to_have_text("step")
            expect(text_node).to_contain_text(XSS)
            # The link lost its script URL; user text and task titles are text, never markup.
            assert text_node.locator("a").first.get_attribute("href") is None
            expect(page.locator(".msg.user")).to_have_text([f"**not bold** {XSS}"])
            expect(page.locator(".msg.user strong")).to_have_count(0)
            expect(page.locator("#task-list .task-title")).to_have_text([XSS])
            expect(page.locator("img")).to_have_count(0)
        finally:
            server.stop()


def test_typed_text_survives_an_error_and_retry_sends_it(
    open_page: Opened, live_server: LiveServer
) -> None:
    page = open_page(live_server.url)
    chat = ChatPage(page)
    page.goto("/")

    def refuse(route: Route) -> None:
        route.abort("connectionrefused")

    page.route("**/chat/stream", refuse)
    chat.send("create a task to renew the passport")
    notice = page.locator("#notice")
    expect(notice).to_contain_text("Could not reach the server")
    expect(chat.input).to_have_value("create a task to renew the passport")
    expect(page.locator(".msg")).to_have_count(0)
    assert task_rows(live_server) == {}
    page.unroute("**/chat/stream", refuse)
    notice.get_by_role("button", name="Retry").click()
    expect(chat.answer_text()).to_contain_text('Created TASK-0001 "Renew the passport"')
    chat.wait_finished()
    expect(notice).to_be_hidden()
    expect(chat.input).to_have_value("")
    assert task_rows(live_server) == {"TASK-0001": ("Renew the passport", "pending")}

    # Shift+Enter is a new line and the box grows with it.
    height = chat.input.bounding_box()["height"]  # type: ignore[index]
    chat.input.fill("one")
    for line in ("two", "three", "four"):
        chat.input.press("Shift+Enter")
        chat.input.type(line)
    expect(chat.input).to_have_value("one\ntwo\nthree\nfour")
    assert chat.input.bounding_box()["height"] > height + 30  # type: ignore[index]
    page.get_by_text("?", exact=True).click()
    expect(page.get_by_role("note", name="Keyboard shortcuts")).to_contain_text("Stop the answer")
    page.keyboard.press("Control+k")
    expect(chat.heading).to_have_text("New chat")


def test_fallback_badge_says_why_in_words(open_page: Opened, tmp_path: Path) -> None:
    closed = httpx.URL(f"http://127.0.0.1:{_closed_port()}")
    server = LiveServer(tmp_path / "data", env={"OLLAMA_BASE_URL": str(closed)})
    try:
        page = open_page(server.url)
        chat = ChatPage(page)
        page.goto("/")
        ask(chat, "create a task to renew the passport")
        meta = chat.answer().locator(".meta")
        expect(meta.locator(".badge.fallback")).to_have_text("fallback")
        expect(meta.locator(".fallback-why")).to_have_text(
            "Ollama (llama3.2) didn't answer (unreachable), "
            "so the built-in offline engine answered."
        )
    finally:
        server.stop()


def _closed_port() -> int:
    from tests.integration.conftest import free_port

    return free_port()


def test_threads_rename_delete_and_search(open_page: Opened, live_server: LiveServer) -> None:
    page = open_page(live_server.url)
    chat = ChatPage(page)
    page.goto("/")
    ask(chat, "create a task to renew the passport")
    page.get_by_role("button", name="New chat").click()
    ask(chat, "create a task to buy milk")
    expect(chat.threads).to_have_count(2)
    expect(page.locator("#threads .thread-time").first).to_have_text("just now")

    newest = page.locator("#threads .thread-item").first
    newest.hover()
    newest.get_by_role("button", name=re.compile("^Rename chat")).click()
    field = page.get_by_role("textbox", name="New chat title")
    field.fill("Groceries")
    field.press("Enter")
    expect(chat.threads.first.locator(".thread-title")).to_have_text("Groceries")
    expect(chat.heading).to_have_text("Groceries")
    listed = httpx.get(f"{live_server.url}/chat/threads", timeout=10).json()
    assert listed[0]["title"] == "Groceries"

    page.keyboard.press("/")
    search = page.get_by_role("searchbox", name="Search chats")
    expect(search).to_be_focused()
    search.fill("grocer")
    expect(chat.threads).to_have_count(1)
    expect(chat.threads.first).to_contain_text("Groceries")
    search.fill("")
    expect(chat.threads).to_have_count(2)

    older = page.locator("#threads .thread-item").nth(1)
    older.hover()
    older.get_by_role("button", name=re.compile("^Delete chat")).click()
    page.get_by_role("button", name="Cancel").click()
    expect(chat.threads).to_have_count(2)
    older = page.locator("#threads .thread-item").nth(1)
    older.hover()
    older.get_by_role("button", name=re.compile("^Delete chat")).click()
    page.get_by_role("button", name="Delete", exact=True).click()
    expect(chat.threads).to_have_count(1)
    assert [
        t["title"] for t in httpx.get(f"{live_server.url}/chat/threads", timeout=10).json()
    ] == ["Groceries"]


def test_task_panel_completes_filters_and_follows_the_chat(
    open_page: Opened, live_server: LiveServer
) -> None:
    create(live_server, "File the taxes", due_date="2020-01-31", priority="urgent")
    page = open_page(live_server.url)
    chat = ChatPage(page)
    page.goto("/")
    rows = page.locator("#task-list .task")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_class(re.compile(r"\boverdue\b"))
    expect(rows.first.locator(".due")).to_have_text("overdue · 2020-01-31")

    # A task the chat creates appears without a reload, from the tool's result.
    chat.send("create a task to renew the passport due tomorrow")
    expect(rows.filter(has_text="Renew the passport")).to_have_count(1)
    chat.wait_finished()

    page.get_by_role("checkbox", name="Complete TASK-0002: Renew the passport").check()
    expect(rows.filter(has_text="Renew the passport")).to_have_class(re.compile(r"\bdone\b"))
    assert task_rows(live_server)["TASK-0002"] == ("Renew the passport", "completed")

    page.get_by_role("button", name="File the taxes").click()
    detail = page.get_by_role("region", name="Task details")
    expect(detail.locator("h3")).to_have_text("File the taxes")
    expect(detail).to_contain_text("urgent")

    page.get_by_label("Status", exact=True).select_option("completed")
    expect(page.locator("#task-list .task-title")).to_have_text(["Renew the passport"])
    page.get_by_label("Status", exact=True).select_option("")
    page.get_by_label("Due", exact=True).select_option("overdue")
    expect(page.locator("#task-list .task-title")).to_have_text(["File the taxes"])


def _audit(page: Page, axe_source: str) -> list[str]:
    page.evaluate(axe_source)
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))}))"
    )
    return [f"{v['id']} ({v['impact']}): {v['nodes'][:3]}" for v in found
            if v["impact"] in ("serious", "critical")]  # fmt: skip


@pytest.fixture(scope="module")
def axe_source() -> str:
    node, why = ensure_node()
    if node is None:
        pytest.skip(f"Node is not available: {why}")
    return (ensure_packages() / "axe-core" / "axe.min.js").read_text()


def test_dark_mode_phone_width_and_accessibility(
    open_page: Opened, live_server: LiveServer, axe_source: str, tmp_path: Path
) -> None:
    page = open_page(live_server.url)
    chat = ChatPage(page)
    page.goto("/")
    create(live_server, "Send the quarterly report", due_date="2020-06-30", priority="high")
    ask(chat, "Create a high-priority task to renew the passport due next Friday")
    ask(chat, "add a task to book the dentist due tomorrow")
    ask(chat, "list my tasks")
    chat.send("delete TASK-0003")
    expect(page.locator(".approval")).to_be_visible()
    chat.wait_finished()
    expect(page.locator("#task-list .task")).to_have_count(3)
    thread_id = page.evaluate("localStorage.getItem('taskagent.thread')")
    shots = {"light": tmp_path / "chat-light.png"}
    page.screenshot(path=str(shots["light"]))
    assert _audit(page, axe_source) == []
    light = page.evaluate("getComputedStyle(document.body).backgroundColor")

    dark = open_page(live_server.url, dark=True)
    dark.add_init_script(f"localStorage.setItem('taskagent.thread', '{thread_id}')")
    dark.goto("/")
    expect(dark.locator(".approval")).to_be_visible()
    assert dark.evaluate("getComputedStyle(document.body).backgroundColor") != light
    shots["dark"] = tmp_path / "chat-dark.png"
    dark.screenshot(path=str(shots["dark"]))
    assert _audit(dark, axe_source) == []

    phone = open_page(live_server.url, width=390, height=844)
    phone.add_init_script(f"localStorage.setItem('taskagent.thread', '{thread_id}')")
    phone.goto("/")
    expect(phone.locator(".approval")).to_be_visible()
    expect(phone.locator("#tasks-panel")).to_be_hidden()
    expect(phone.locator("#sidebar")).to_be_hidden()
    wide = "document.documentElement.scrollWidth > document.documentElement.clientWidth"
    assert phone.evaluate(wide) is False
    shots["phone"] = tmp_path / "chat-phone.png"
    phone.screenshot(path=str(shots["phone"]))
    assert _audit(phone, axe_source) == []
    phone.get_by_role("button", name="Tasks").click()
    expect(phone.locator("#tasks-panel")).to_be_visible()
    expect(phone.locator("#task-list .task")).to_have_count(3)
    assert phone.evaluate(wide) is False
    shots["phone-tasks"] = tmp_path / "chat-phone-tasks.png"
    phone.screenshot(path=str(shots["phone-tasks"]))
    phone.get_by_role("button", name="Chats").click()
    expect(phone.locator("#tasks-panel")).to_be_hidden()
    expect(phone.locator("#sidebar")).to_be_visible()
    assert _audit(phone, axe_source) == []

    for shot in shots.values():
        assert shot.stat().st_size > 10_000
    if os.environ.get("UPDATE_SCREENSHOT"):
        # The README's pictures are refreshed on request, not by every test run.
        for name, shot in shots.items():
            shutil.copy(shot, SCREENSHOTS / f"chat-{name}.png")
        shutil.copy(shots["light"], SCREENSHOTS / "chat.png")  # the README's hero
