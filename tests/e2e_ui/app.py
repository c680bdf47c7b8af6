"""agent-chat-ui, built from its source as its README says, and served by `next start`.

The source is a snapshot of github.com/langchain-ai/agent-chat-ui at `PINNED` in
`.cache/agent-chat-ui` (or `AGENT_CHAT_UI_DIR`); the first run clones it if missing. It
installs with the pnpm its `packageManager` names (from npm, through npx) against its
lockfile, and builds once; later runs reuse the build.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import httpx

from tests.clients.node import NPM_CACHE, REPO

PINNED = "fdc87e65307581b02898d33c62b3f285e56bd85b"
SOURCE = Path(os.environ.get("AGENT_CHAT_UI_DIR", REPO / ".cache" / "agent-chat-ui"))
PNPM = "pnpm@10.5.1"
# Next.js's own hook for builds without Google Fonts: keeps `next build` off the network.
OFFLINE_FONTS = Path(__file__).with_name("google_fonts_offline.cjs")


def _run(command: list[str], cwd: Path, timeout: float = 1800) -> None:
    env = {
        **os.environ,
        "NEXT_TELEMETRY_DISABLED": "1",
        "NEXT_FONT_GOOGLE_MOCKED_RESPONSES": str(OFFLINE_FONTS),
    }
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        output = done.stdout[-3000:] + done.stderr[-3000:]
        raise RuntimeError(f"{' '.join(command)} failed:\n{output}")


def pnpm(*args: str) -> list[str]:
    """The command line of the agent-chat-ui's own pnpm version, fetched from npm by npx."""
    return ["npx", "--yes", "--cache", str(NPM_CACHE), PNPM, *args]


def prepare() -> Path:
    """Clone (if missing), install and build agent-chat-ui; return its folder."""
    if not (SOURCE / "package.json").exists():
        SOURCE.parent.mkdir(parents=True, exist_ok=True)
        repo = "https://github.com/langchain-ai/agent-chat-ui.git"
        _run(["git", "clone", "--quiet", repo, str(SOURCE)], cwd=SOURCE.parent)
        _run(["git", "checkout", "--quiet", PINNED], cwd=SOURCE)
    if not (SOURCE / "node_modules" / ".modules.yaml").exists():
        store = REPO / ".cache" / "pnpm-store"
        _run(pnpm("install", "--frozen-lockfile", "--store-dir", str(store)), cwd=SOURCE)
    if not (SOURCE / ".next" / "BUILD_ID").exists():
        _run(pnpm("build"), cwd=SOURCE)
    return SOURCE


class NextApp:
    """`next start` of the built app on a loopback port."""

    def __init__(self, source: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.output: list[str] = []
        self.proc = subprocess.Popen(
            [str(source / "node_modules" / ".bin" / "next"), "start", "-H", "127.0.0.1"]
            + ["-p", str(port)],
            cwd=source,
            env={**os.environ, "NEXT_TELEMETRY_DISABLED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("next start exited:\n" + "".join(self.output[-40:]))
            try:
                if httpx.get(self.url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError("next start did not answer:\n" + "".join(self.output[-40:]))

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
