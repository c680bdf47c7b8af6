"""LangChain's agent-chat-ui against our server, set up as its README says, in Chromium.

Its setup form takes the deployment URL and the assistant id `agent`; then a person chats,
finds the thread in the history panel, regenerates an answer, edits a message, and answers a
delete approval with the Approve button. The flows share one server and one page, in order.
"""

import re
import sqlite3
from collections.abc import Iterator

import pytest
from langgraph_sdk import get_sync_client
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.clients.conftest import Server, start_server
from tests.e2e_ui.app import NextApp, prepare
from tests.integration.browser import CHROMIUM_ARGS, ensure_chromium
from tests.integration.conftest import free_port

pytestmark = [pytest.mark.e2e_ui, pytest.mark.integration]

TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def app() -> Iterator[NextApp]:
    served = NextApp(prepare(), free_port())
    yield served
    served.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_server(tmp_path_factory.mktemp("e2e-ui"))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path, why = ensure_chromium()
    if path is None:
        pytest.skip(f"Chromium is not installed and could not be installed: {why}")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def page(browser: Browser, app: NextApp, server: Server) -> Iterator[Page]:
    """The chat after its documented setup: deployment URL and assistant id, then Continue."""
    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    opened.goto(f"{app.url}/?chatHistoryOpen=true")
    opened.get_by_label("Deployment URL").fill(server.url)
    opened.get_by_label("Assistant / Graph ID").fill("agent")
    opened.get_by_role("button", name="Continue").click()
    expect(opened.get_by_placeholder("Type your message...")).to_be_visible()
    yield opened
    context.close()


def send(page: Page, text: str) -> None:
    box = page.get_by_placeholder("Type your message...")
    box.fill(text)
    box.press("Enter")


def thread_id(page: Page) -> str:
    expect(page).to_have_url(re.compile(r"[?&]threadId="))
    return page.url.split("threadId=")[1].split("&")[0]


def tasks_in(server: Server) -> list[tuple[str, str]]:
    with sqlite3.connect(server.data_dir / "tasks.sqlite") as conn:
        return conn.execute("SELECT id, title FROM tasks ORDER BY id").fetchall()


def idle(page: Page) -> None:
    """The run has ended: the composer offers Send again, not Cancel."""
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)


def test_send_a_message_and_see_the_answer(page: Page, server: Server) -> None:
    send(page, "create a task to buy milk")
    expect(page.get_by_text('Created TASK-0001 "Buy milk"')).to_be_visible()
    idle(page)
    assert tasks_in(server) == [("TASK-0001", "Buy milk")]


def test_the_history_panel_lists_the_thread(page: Page, server: Server) -> None:
    tid = thread_id(page)
    listed = page.get_by_role("button", name="create a task to buy milk")
    expect(listed.first).to_be_visible()
    metadata = get_sync_client(url=server.url).threads.get(tid)["metadata"] or {}
    assert metadata.get("graph_id") == "agent" or metadata.get("assistant_id")


def test_edit_a_message_branches_the_thread(page: Page, server: Server) -> None:
    send(page, "list my tasks")
    expect(page.get_by_text("You have 1 task")).to_be_visible()
    idle(page)
    page.get_by_text("list my tasks").last.hover()
    page.get_by_role("button", name="Edit").last.click()
    editor = page.locator("textarea:not([placeholder='Type your message...'])")
    editor.fill("create a task to buy bread")
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_text('Created TASK-0002 "Buy bread"')).to_be_visible()
    idle(page)
    expect(page.get_by_text("list my tasks")).to_have_count(0)
    state = get_sync_client(url=server.url).threads.get_state(thread_id(page))
    assert "list my tasks" not in str(state["values"])
    assert tasks_in(server) == [("TASK-0001", "Buy milk"), ("TASK-0002", "Buy bread")]


def test_regenerate_reruns_the_answer_from_its_checkpoint(page: Page, server: Server) -> None:
    client = get_sync_client(url=server.url)
    tid = thread_id(page)
    runs_before = len(client.runs.list(tid))
    head_before = client.threads.get_state(tid)["checkpoint"]["checkpoint_id"]
    page.get_by_role("button", name="Refresh").last.click()
    expect(page.get_by_text('Created TASK-0002 "Buy bread"')).to_be_visible()
    idle(page)
    assert len(client.runs.list(tid)) == runs_before + 1
    head = client.threads.get_state(tid)
    assert head["checkpoint"]["checkpoint_id"] != head_before
    # Re-run from the answer's parent checkpoint: the same turn answered again, no new task.
    values = head["values"]
    assert isinstance(values, dict)
    humans = [str(m["content"]) for m in values["messages"] if m["type"] == "human"]
    assert humans.count("create a task to buy bread") == 1
    assert tasks_in(server) == [("TASK-0001", "Buy milk"), ("TASK-0002", "Buy bread")]


def test_approve_a_delete_with_the_approve_button(page: Page, server: Server) -> None:
    send(page, "delete TASK-0001")
    approve = page.get_by_role("button", name="Approve")
    expect(approve).to_be_visible()
    assert ("TASK-0001", "Buy milk") in tasks_in(server)
    approve.click()
    expect(page.get_by_text('Deleted TASK-0001 "Buy milk"')).to_be_visible()
    idle(page)
    assert tasks_in(server) == [("TASK-0002", "Buy bread")]
