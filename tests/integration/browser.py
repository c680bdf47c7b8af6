"""Helpers for driving the chat page in Debian's headless Chromium with Playwright."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from playwright.sync_api import Locator, Page, expect

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]

# Records the length of the newest assistant text at every DOM change, to see it grow.
TEXT_GROWTH_RECORDER = """
window.__answerLengths = [];
new MutationObserver(() => {
  const texts = document.querySelectorAll(".msg.assistant .text");
  const last = texts[texts.length - 1];
  if (last) window.__answerLengths.push(last.textContent.length);
}).observe(document, { subtree: true, childList: true, characterData: true });
"""


def ensure_chromium() -> tuple[str | None, str]:
    """Return Chromium's path, installing Debian's package if missing, or (None, why not)."""
    found = shutil.which("chromium")
    if found:
        return found, ""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"{' '.join(command)} failed: {exc}"
        if done.returncode != 0:
            return None, f"{' '.join(command)} exited {done.returncode}: {done.stderr[-500:]}"
    found = shutil.which("chromium")
    return (found, "") if found else (None, "apt-get installed chromium but it is not on PATH")


def sse_prefix(body: str, through: str) -> tuple[str, str]:
    """Cut an SSE body after its first `through` event: (the cut body, that event's id)."""
    kept: list[str] = []
    for block in re.split(r"\r\n\r\n|\n\n|\r\r", body):
        if not block.strip():
            continue
        kept.append(block)
        if re.search(rf"^event: ?{re.escape(through)}\r?$", block, re.M):
            found = re.search(r"^id: ?(\S+)", block, re.M)
            assert found, f"event without id: {block!r}"
            return "\r\n\r\n".join(kept) + "\r\n\r\n", found.group(1)
    raise AssertionError(f"no {through!r} event in the stream: {body[:500]!r}")


class ChatPage:
    """The chat page as a person uses it: type, press Enter, read the answers."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.input = page.get_by_role("textbox", name="Message")
        self.send_button = page.get_by_role("button", name="Send", exact=True)
        self.heading = page.get_by_role("heading", level=1)
        self.threads = page.locator("#threads .thread")

    def send(self, text: str) -> None:
        """Type a message and press Enter (once the previous run has finished)."""
        expect(self.send_button).to_be_enabled()
        self.input.fill(text)
        self.input.press("Enter")

    def answer(self) -> Locator:
        """The newest assistant message."""
        return self.page.locator(".msg.assistant").last

    def answer_text(self) -> Locator:
        """The text of the newest assistant message."""
        return self.answer().locator(".text")

    def wait_finished(self) -> None:
        """Wait until the newest run has ended (its badge shows and Send is enabled again)."""
        expect(self.answer().locator(".badge").first).to_be_visible()
        expect(self.send_button).to_be_enabled()

    def stored_run(self) -> dict[str, object] | None:
        """What the page keeps in localStorage about the run it is streaming."""
        stored = self.page.evaluate("JSON.parse(localStorage.getItem('taskagent.run'))")
        return stored if isinstance(stored, dict) else None
