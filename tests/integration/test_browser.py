"""The browser chat at `/`, driven in real headless Chromium against the real server."""

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Dialog,
    Page,
    Request,
    Route,
    expect,
    sync_playwright,
)

from tests.integration.browser import (
    CHROMIUM_ARGS,
    TEXT_GROWTH_RECORDER,
    ChatPage,
    ensure_chromium,
    sse_prefix,
)
from tests.integration.conftest import LiveServer

pytestmark = pytest.mark.integration

TIMEOUT_MS = 15_000
QUARTERLY = "Create a high-priority task for the quarterly review due next Friday"
XSS_TITLE = "<img src=x onerror=alert(1)>"
# Threads are titled from what their first turn did: here, the task it created.
QUARTERLY_THREAD = "Quarterly review"
TITLES = ["buy milk", "call mom", "pay rent", "book dentist", "renew passport",
          "water plants", "fix the bike", "send the invoice"]  # fmt: skip
TASK_IDS = [f"TASK-{n:04d}" for n in range(1, len(TITLES) + 1)]
# Slow enough that an eight-line answer streams for about two seconds.
PACED = {"TASKAGENT_OFFLINE_TOKEN_DELAY_MS": "40"}


@pytest.fixture(scope="session")
def chromium() -> str:
    path, why = ensure_chromium()
    if path is None:
        pytest.skip(f"Chromium is not installed and could not be installed: {why}")
    return path


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Watched:
    """A page plus everything it should never do: open dialogs, throw errors."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[[str], Watched]]:
    """Open a fresh browser context (own localStorage) on a server's base URL."""
    expect.set_options(timeout=TIMEOUT_MS)
    opened: list[tuple[BrowserContext, Watched]] = []

    def open_(base_url: str) -> Watched:
        context = browser.new_context(base_url=base_url, viewport={"width": 1200, "height": 800})
        context.set_default_timeout(TIMEOUT_MS)
        context.add_init_script(TEXT_GROWTH_RECORDER)
        watched = Watched(context.new_page())
        opened.append((context, watched))
        return watched

    yield open_
    for context, watched in opened:
        context.close()
        assert watched.dialogs == [], f"the page opened dialogs: {watched.dialogs}"
        assert watched.errors == [], f"the page threw: {watched.errors}"


@pytest.fixture
def watched(open_page: Callable[[str], Watched], live_server: LiveServer) -> Watched:
    return open_page(live_server.url)


def test_streams_tool_cards_badge_and_approval(watched: Watched) -> None:
    page = watched.page
    chat = ChatPage(page)
    page.goto("/")
    expect(chat.input).to_be_focused()

    chat.send(QUARTERLY)
    answer = chat.answer()
    expect(chat.answer_text()).to_have_text(
        re.compile(
            r'^Created TASK-0001 "Quarterly review" \(high priority, due Fri \d{4}-\d\d-\d\d\)\.$'
        )
    )
    card = answer.locator(".card")
    expect(card.locator(".tool")).to_have_text("create_task")
    expect(card.locator(".args")).to_contain_text("priority: high")
    expect(card.locator(".result")).to_have_text("✓ TASK-0001 · Quarterly review")
    expect(answer.locator(".badge")).to_have_text(["offline-engine"])
    chat.wait_finished()
    # The answer arrived token by token: the page showed it at many lengths on its way.
    lengths = [n for n in page.evaluate("window.__answerLengths") if n]
    final = len(chat.answer_text().text_content() or "")
    assert lengths == sorted(lengths) and lengths[-1] == final
    assert len(set(lengths)) >= 5, lengths
    expect(chat.threads).to_have_count(1)
    expect(chat.threads.first).to_contain_text(QUARTERLY_THREAD)
    expect(chat.heading).to_have_text(QUARTERLY_THREAD)

    chat.send("delete TASK-0001")
    approval = page.locator(".approval")
    expect(approval.locator(".question")).to_have_text('Delete TASK-0001 "Quarterly review"?')
    expect(approval.locator(".subject")).to_have_text("TASK-0001 · Quarterly review")
    expect(approval.get_by_role("button", name="Keep it")).to_be_enabled()
    approval.get_by_role("button", name="Delete it").click()
    expect(chat.answer_text()).to_have_text('Deleted TASK-0001 "Quarterly review".')
    expect(page.locator(".card", has_text="delete_task").locator(".result")).to_have_text(
        "✓ deleted TASK-0001 · Quarterly review"
    )
    expect(approval.get_by_role("button", name="Delete it")).to_be_disabled()
    chat.wait_finished()

    chat.send("list my tasks")
    expect(chat.answer_text()).to_contain_text("You have no tasks")
    expect(chat.answer().locator(".card .result")).to_have_text("✓ 0 task(s)")
    chat.wait_finished()


def test_reload_and_dropped_connection_resume_the_stream_once(
    watched: Watched, live_server: LiveServer
) -> None:
    page = watched.page
    chat = ChatPage(page)
    thread_id = _thread_with_eight_tasks(live_server.url)

    page.goto("/")
    page.locator(".thread", has_text="Buy milk").click()
    expect(page.locator(".msg.user")).to_have_count(len(TITLES))
    expect(page.locator(".msg.assistant .text").last).to_contain_text("TASK-0008")

    # The POST's stream is cut after its first token and every rejoin hangs: the page is stuck
    # mid-answer, as when a reload or a network drop catches it half-way.
    cut: dict[str, str] = {}

    def cut_after_first_token(route: Route) -> None:
        response = route.fetch()
        body, cut["id"] = sse_prefix(response.text(), through="token")
        route.fulfill(response=response, body=body)

    page.route("**/chat/stream", cut_after_first_token)
    page.route("**/chat/runs/*/stream", lambda route: None)
    chat.send("list my tasks")
    expect(chat.answer_text()).to_have_text("You")
    expect(chat.send_button).to_be_disabled()
    stored = chat.stored_run()
    assert stored and stored["thread_id"] == thread_id and stored["last_event_id"] == cut["id"]

    page.unroute_all(behavior="ignoreErrors")
    with page.expect_request(lambda r: "/chat/runs/" in r.url) as rejoin:
        page.reload()
    assert rejoin.value.headers.get("last-event-id") == cut["id"]
    assert rejoin.value.url.endswith(f"/chat/runs/{stored['run_id']}/stream")
    _expect_complete_list(chat, TASK_IDS)
    expect(page.locator(".msg.user")).to_have_count(len(TITLES) + 1)
    assert chat.stored_run() is None

    # A dropped connection without a reload: the page rejoins by itself with Last-Event-ID.
    rejoins: list[Request] = []
    page.on("request", lambda r: rejoins.append(r) if "/chat/runs/" in r.url else None)
    page.route("**/chat/stream", cut_after_first_token)
    chat.send("list my tasks")
    _expect_complete_list(chat, TASK_IDS)
    assert [r.headers.get("last-event-id") for r in rejoins] == [cut["id"]]
    page.unroute_all(behavior="ignoreErrors")

    # What the page shows is what the server keeps: reopening the thread renders the same.
    page.reload()
    expect(page.locator(".msg.user")).to_have_count(len(TITLES) + 2)
    _expect_complete_list(chat, TASK_IDS)

    # A thread whose run is still going (as another tab would find it) is joined from the
    # start of that run's stream: the thread view claims the last run is active.
    run_id = rejoins[0].url.split("/")[-2]

    def still_running(route: Route) -> None:
        response = route.fetch()
        route.fulfill(response=response, json={**response.json(), "active_run_id": run_id})

    page.route("**/chat/threads/*/messages", still_running)
    with page.expect_request(lambda r: "/chat/runs/" in r.url) as joined:
        page.reload()
    assert joined.value.url.endswith(f"/chat/runs/{run_id}/stream")
    assert "last-event-id" not in joined.value.headers
    expect(page.locator(".msg.user")).to_have_count(len(TITLES) + 2)
    _expect_complete_list(chat, TASK_IDS)
    page.unroute_all(behavior="ignoreErrors")


def _thread_with_eight_tasks(base_url: str) -> str:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        thread_id: str | None = None
        for title in TITLES:
            body = {"message": f"add a task to {title}"} | (
                {"thread_id": thread_id} if thread_id else {}
            )
            made = client.post("/chat", json=body)
            assert made.status_code == 200, made.text
            thread_id = made.json()["thread_id"]
    assert thread_id
    return thread_id


def test_reload_mid_answer_and_server_restart_finish_the_answer_once(
    open_page: Callable[[str], Watched], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    setup = LiveServer(data)
    try:
        thread_id = _thread_with_eight_tasks(setup.url)
    finally:
        setup.stop()
    # The same data, now answered slowly enough to reload or kill the server mid-answer.
    server = LiveServer(data, env=PACED)
    try:
        page = open_page(server.url).page
        chat = ChatPage(page)
        page.goto("/")
        page.locator(".thread", has_text="Buy milk").click()
        expect(page.locator(".msg.user")).to_have_count(len(TITLES))

        chat.send("list my tasks")
        expect(chat.answer_text()).not_to_be_empty()
        stored = chat.stored_run()
        assert stored and stored["thread_id"] == thread_id
        with page.expect_request(lambda r: "/chat/runs/" in r.url) as rejoin:
            page.reload()
        assert rejoin.value.headers.get("last-event-id")
        _expect_complete_list(chat, TASK_IDS)
        expect(page.locator(".msg.user")).to_have_count(len(TITLES) + 1)

        # SIGKILL mid-answer: the page keeps rejoining until the restarted server resumes the
        # run as a new attempt, then discards the partial text and shows the re-run answer.
        chat.send("list my tasks")
        expect(chat.answer_text()).not_to_be_empty()
        page.evaluate("window.__answerLengths = [window.__answerLengths.at(-1)]")
        server.kill()
        server = LiveServer(data, port=server.port, env=PACED)
        _expect_complete_list(chat, TASK_IDS)
        lengths = page.evaluate("window.__answerLengths")
        # The text shrank once: the partial answer of the killed attempt was discarded.
        assert any(b < a for a, b in zip(lengths, lengths[1:], strict=False)), lengths
        page.reload()
        expect(page.locator(".msg.user")).to_have_count(len(TITLES) + 2)
        _expect_complete_list(chat, TASK_IDS)
    finally:
        server.stop()


def _expect_complete_list(chat: ChatPage, ids: list[str]) -> None:
    chat.wait_finished()
    text = chat.answer_text()
    expect(text).to_contain_text(f"You have {len(ids)} tasks:")
    content = text.text_content() or ""
    assert content.startswith("You have") and content.count("You have") == 1, content
    for task_id in ids:
        assert content.count(task_id) == 1, (task_id, content)
    expect(chat.answer().locator(".card")).to_have_count(1)
    expect(chat.answer().locator(".badge")).to_have_text(["offline-engine"])


def test_threads_switch_and_text_is_never_markup(watched: Watched, tmp_path: Path) -> None:
    page = watched.page
    chat = ChatPage(page)
    page.goto("/")
    chat.send(QUARTERLY)
    expect(chat.answer_text()).to_contain_text("Created TASK-0001")
    chat.wait_finished()

    page.get_by_role("button", name="New chat").click()
    expect(chat.heading).to_have_text("New chat")
    expect(page.locator(".msg")).to_have_count(0)
    chat.send(f'add a task called "{XSS_TITLE}"')
    expect(chat.answer_text()).to_have_text(f'Created TASK-0002 "{XSS_TITLE}" (normal priority).')
    expect(chat.answer().locator(".card .result")).to_have_text(f"✓ TASK-0002 · {XSS_TITLE}")
    chat.wait_finished()
    expect(chat.threads).to_have_count(2)
    expect(chat.threads.first).to_contain_text(XSS_TITLE)

    chat.threads.filter(has_text=QUARTERLY_THREAD).click()
    expect(chat.heading).to_have_text(QUARTERLY_THREAD)
    expect(page.locator(".msg.user")).to_have_text([QUARTERLY])
    expect(chat.answer_text()).to_contain_text('Created TASK-0001 "Quarterly review"')
    expect(chat.answer().locator(".badge")).to_have_text(["offline-engine"])

    chat.threads.filter(has_text=XSS_TITLE).click()
    expect(page.locator(".msg.user")).to_have_text([f'add a task called "{XSS_TITLE}"'])
    chat.send("list my tasks")
    expect(chat.answer_text()).to_contain_text(f'TASK-0002 "{XSS_TITLE}"')
    chat.wait_finished()
    expect(page.locator("img")).to_have_count(0)
    assert watched.dialogs == []

    page.screenshot(path=str(tmp_path / "chat.png"))
    assert (tmp_path / "chat.png").stat().st_size > 10_000
    # The README's pictures come from a real conversation in test_browser_chat.py, not this one.


def test_a_server_with_keys_asks_for_one_and_remembers_it(browser: Browser, tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "data", env={"TASKAGENT_API_KEYS": "k-page-00000:pat:write"})
    context = browser.new_context(base_url=server.url)
    try:
        page = context.new_page()
        asked: list[str] = []

        def answer(dialog: Dialog) -> None:
            asked.append(dialog.message)
            dialog.accept("k-page-00000")

        page.on("dialog", answer)
        page.goto("/")
        chat = ChatPage(page)
        chat.send("add a task to renew the passport")
        expect(chat.answer_text()).to_contain_text("TASK-0001", timeout=TIMEOUT_MS)
        assert asked and "API key" in asked[0]
        page.reload()
        chat = ChatPage(page)
        chat.send("list my tasks")
        expect(chat.answer_text()).to_contain_text("Renew the passport", timeout=TIMEOUT_MS)
        assert len(asked) == 1  # remembered after the first time
    finally:
        context.close()
        server.stop()


def test_a_withdrawn_claim_is_replaced_by_the_delivered_answer(
    open_page: Callable[[str], Watched], tmp_path: Path
) -> None:
    from tests.fakes.llm_servers import FakeOpenAIServer, text

    with FakeOpenAIServer() as fake:
        fake.script(text("I deleted the task: TASK-0160."), text("TASK-0160 has been deleted."))
        live = LiveServer(tmp_path / "data", env={"OPENAI_BASE_URL": fake.base_url})
        try:
            page = open_page(live.url).page
            chat = ChatPage(page)
            page.goto("/")
            chat.send("Delete it")
            chat.wait_finished()
            honest = "I didn't change anything: no tool was called to do it in this turn."
            expect(chat.answer_text()).to_have_text(honest)
            expect(page.locator(".msg.assistant")).not_to_contain_text("I deleted the task")
            # A reload renders the stored thread: the withdrawn answer is not in it either.
            page.reload()
            expect(chat.answer_text()).to_have_text(honest)
            expect(page.locator(".msg.assistant")).not_to_contain_text("has been deleted")
        finally:
            live.stop()
