"""The servers an eval talks to: a fresh subprocess, a fresh in-process app, or a running one."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydantic import SecretStr

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60.0
EVAL_USER = "eval-user"


@dataclass(frozen=True)
class ModelChoice:
    """Which model the server answers with: the offline engine unless a URL is given."""

    openai_base_url: str | None = None
    ollama_base_url: str | None = None
    model: str | None = None
    context_tokens: int | None = None
    """The model's context size, when smaller than the server's default for the tier."""

    @property
    def label(self) -> str:
        """The `model_used` a correct answer carries."""
        if self.ollama_base_url:
            return f"ollama:{self.model or 'llama3.2'}"
        if self.openai_base_url:
            return f"openai:{self.model or 'gpt-4o-mini'}"
        return "offline-engine"

    def env(self) -> dict[str, str]:
        """The server environment that selects this model."""
        env: dict[str, str] = {}
        if self.ollama_base_url:
            env["OLLAMA_BASE_URL"] = self.ollama_base_url
            if self.model:
                env["OLLAMA_MODEL"] = self.model
        if self.openai_base_url:
            env["OPENAI_BASE_URL"] = self.openai_base_url
            if os.environ.get("OPENAI_API_KEY"):  # a hosted API needs it; local servers don't
                env["OPENAI_API_KEY"] = os.environ["OPENAI_API_KEY"]
            if self.model:
                env["OPENAI_MODEL"] = self.model
        if self.context_tokens:
            tier = "OLLAMA" if self.ollama_base_url else "OPENAI"
            env[f"TASKAGENT_{tier}_CONTEXT_TOKENS"] = str(self.context_tokens)
        return env


@dataclass
class Target:
    """A server to talk to as one user, and the data directory holding its databases."""

    client: httpx.AsyncClient
    data_dir: Path
    user: str
    fresh: bool = True
    log: list[str] = field(default_factory=list)

    @property
    def tasks_db(self) -> Path:
        """The SQLite file holding tasks, audit and usage."""
        return self.data_dir / "tasks.sqlite"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_env(data_dir: Path, key: str, model: ModelChoice) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OLLAMA_", "OPENAI_", "TASKAGENT_"))
    }
    env.update(
        {
            "TASKAGENT_DATA_DIR": str(data_dir),
            "TASKAGENT_API_KEYS": f"{key}:{EVAL_USER}:write",
            "TASKAGENT_LOG_LEVEL": "WARNING",
            "LANGGRAPH_STRICT_MSGPACK": "true",
            **model.env(),
        }
    )
    return env


class SubprocessServers:
    """A fresh `taskagent serve` per case, each on a free loopback port with its own data dir.

    The next case's server is launched while the current case runs: start-up (mostly
    imports) then overlaps the conversation instead of adding to it.
    """

    def __init__(self, model: ModelChoice, turn_timeout_s: float) -> None:
        self.model = model
        self.turn_timeout_s = turn_timeout_s
        self._next: _Launched | None = None
        self._count = 0

    def _launch(self, scratch: Path) -> _Launched:
        self._count += 1
        data_dir = scratch / f"server-{self._count:04d}"
        key = "eval_" + secrets.token_urlsafe(16)
        port = _free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "server.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=REPO,
            env=_server_env(data_dir, key, self.model),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        return _Launched(proc, f"http://127.0.0.1:{port}", key, data_dir)

    @asynccontextmanager
    async def __call__(self, data_dir: Path) -> AsyncIterator[Target]:
        """Serve one case from a server started for it alone (`data_dir` names the scratch)."""
        launched = self._next or self._launch(data_dir.parent)
        self._next = self._launch(data_dir.parent)
        try:
            async with httpx.AsyncClient(
                base_url=launched.url,
                headers={"X-Api-Key": launched.key},
                timeout=self.turn_timeout_s,
            ) as client:
                await _wait_healthy(client, launched.proc)
                yield Target(client, launched.data_dir, EVAL_USER)
        finally:
            launched.stop()

    def close(self) -> None:
        """Stop the server launched ahead for a case that will not come."""
        if self._next is not None:
            self._next.stop()
            self._next = None


@dataclass
class _Launched:
    proc: subprocess.Popen[str]
    url: str
    key: str
    data_dir: Path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def _wait_healthy(client: httpx.AsyncClient, proc: subprocess.Popen[str]) -> None:
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
    while asyncio.get_running_loop().time() < deadline:
        if proc.poll() is not None:
            error = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"the server exited at start: {error.strip()[-500:]}")
        try:
            if (await client.get("/health", timeout=2)).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the server did not answer /health within {START_TIMEOUT_S:.0f} s")


@asynccontextmanager
async def in_process_server(
    data_dir: Path, model: ModelChoice, turn_timeout_s: float
) -> AsyncIterator[Target]:
    """Run the real app in this process (its lifespan included) with a fresh data dir."""
    from graph.settings import Settings
    from server.app import create_app

    key = "eval_" + secrets.token_urlsafe(16)
    settings = Settings(
        data_dir=data_dir,
        api_keys=SecretStr(f"{key}:{EVAL_USER}:write"),
        ollama_base_url=model.ollama_base_url,
        openai_base_url=model.openai_base_url,
    )
    if model.model:
        settings.ollama_model = settings.openai_model = model.model
    if model.context_tokens:
        settings.ollama_context_tokens = settings.openai_context_tokens = model.context_tokens
    if not model.openai_base_url:
        settings.openai_api_key = None  # an OPENAI_API_KEY in the environment adds no tier
    data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://127.0.0.1",
            headers={"X-Api-Key": key},
            timeout=turn_timeout_s,
        ) as client:
            yield Target(client, data_dir, EVAL_USER)


@asynccontextmanager
async def external_server(
    url: str, data_dir: Path, api_key: str | None, user: str, turn_timeout_s: float
) -> AsyncIterator[Target]:
    """Talk to an already running server whose data dir this process can read."""
    headers = {"X-Api-Key": api_key} if api_key else {}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=turn_timeout_s) as client:
        yield Target(client, data_dir, user, fresh=False)
