"""`make readme-check`: run the README's shell commands in a fresh clone, as a new user would.

The clone is of the committed HEAD, in a scratch directory, with no uv on PATH (the uv that
`make` would bootstrap into `.tools/bin` is linked there instead, so nothing is fetched) and
uv told to stay offline (its cache must hold the locked packages). Commands come from the
README's `bash` blocks and the `make …` lines of its plain blocks, in order. Servers (`make
run`, `taskagent serve`) start in the background and must answer `/ok`; every other command
must exit 0 (with `y` on stdin for the prompts that ask first; curl with --fail-with-body).
Commands that need what a scratch clone cannot have are skipped and listed: placeholders
(`<id>`, `tak_...`), a model or another network service, the slow suites, a server bound
beyond loopback. The README's ports are mapped to free ones, so a server already on :8000
does not interfere.

    python scripts/readme_check.py [--keep] [--repo PATH]
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMAND_TIMEOUT_S = 600.0  # the first `make run` installs the locked packages
SERVER_READY_S = 600.0

SKIPS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"<[^>\s]+[^>]*>|\.\.\.|…|path/to"), "a placeholder to fill in"),
    (re.compile(r"\bmake (test|bench|faults|eval|e2e-ui|studio|lint)\b"), "a long suite"),
    (
        re.compile(r"\b(OPENAI_|OLLAMA_|LANGSMITH_)|^\s*ollama\b"),
        "needs a model or a network service",
    ),
    (re.compile(r"\bHOST=0\.0\.0\.0\b"), "binds beyond loopback"),
    (
        re.compile(r"\bmake run-pg\b|\bDATABASE_URL="),
        "PostgreSQL and replicas (tests/integration/test_replicas.py runs them)",
    ),
]
SERVER = re.compile(r"\bmake run\b|\btaskagent serve\b")
DEFAULT_PORT = 8000


@dataclass
class Check:
    """The scratch clone, its environment, its port map and the servers it started."""

    clone: Path
    env: dict[str, str]
    ports: dict[int, int] = field(default_factory=dict)
    servers: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def port(self, readme_port: int) -> int:
        """Return the free port standing in for the README's `readme_port`."""
        if readme_port not in self.ports:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.ports[readme_port] = int(probe.getsockname()[1])
        return self.ports[readme_port]

    def localise(self, command: str) -> str:
        """Point the command's URLs and PORT= at this check's ports."""

        def swap(match: re.Match[str]) -> str:
            return f"{match.group(1)}{self.port(int(match.group(2)))}"

        command = re.sub(r"((?:localhost|127\.0\.0\.1):)(\d{4,5})\b", swap, command)
        return re.sub(r"\b(PORT=)(\d{4,5})\b", swap, command)

    def stop(self, port: int) -> None:
        """Stop the server this check started on `port`, if any."""
        server = self.servers.pop(port, None)
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()

    def stop_all(self) -> None:
        """Stop every server the check started."""
        for port in list(self.servers):
            self.stop(port)


def readme_commands(text: str) -> list[str]:
    """Return the shell commands of the README, in order, continuation lines joined."""
    commands: list[str] = []
    for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M):
        if lang not in ("bash", "sh", "shell", ""):
            continue
        joined = re.sub(r"\s*\\\n\s*", " ", body)
        for line in joined.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if lang == "" and not line.startswith("make "):
                continue
            commands.append(line)
    return commands


def skip_reason(command: str) -> str | None:
    """Return why the command cannot run in a scratch clone, or None."""
    words = command.split("#", 1)[0]
    for pattern, reason in SKIPS:
        if pattern.search(words):
            return reason
    return None


def fresh_env(clone: Path) -> dict[str, str]:
    """A new user's environment: no uv on PATH, no model or taskagent settings."""
    drop = ("TASKAGENT_", "OLLAMA_", "OPENAI_", "LANGSMITH_", "LANGCHAIN_", "VIRTUAL_ENV")
    # uv's own settings stay (its cache dir above all), but not a venv other than the clone's.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(drop) and k != "UV_PROJECT_ENVIRONMENT"
    }
    env["PATH"] = os.pathsep.join(
        d for d in env.get("PATH", "").split(os.pathsep) if d and not (Path(d) / "uv").exists()
    )
    env["UV_OFFLINE"] = "1"  # only the cache: the check fetches nothing
    env["HOME"] = os.environ.get("HOME", str(clone))
    return env


def clone_repo(repo: Path, into: Path) -> Path:
    """Clone the committed HEAD of `repo` and give it the uv `make` would have bootstrapped."""
    clone = into / "taskagent"
    subprocess.run(["git", "clone", "--quiet", str(repo), str(clone)], check=True)
    uv = shutil.which("uv") or str(repo / ".tools" / "bin" / "uv")
    if not Path(uv).exists():
        sys.exit("readme-check: needs uv (on PATH or in .tools/bin) to stand in for the bootstrap")
    (clone / ".tools" / "bin").mkdir(parents=True)
    (clone / ".tools" / "bin" / "uv").symlink_to(uv)
    return clone


def wait_ok(port: int, server: subprocess.Popen[bytes], deadline: float) -> bool:
    """Wait until `GET /ok` answers 200 on `port`; False if the server exits or time runs out."""
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ok", timeout=2) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def start_server(check: Check, command: str, log: Path) -> tuple[bool, str]:
    """Start a README server command in the background; ok once it answers `/ok`."""
    given = re.search(r"\bPORT=(\d+)", command) or re.search(r"--port[ =](\d+)", command)
    if given is not None:
        port = int(given.group(1))
    else:
        port = check.port(DEFAULT_PORT)
        command = f"PORT={port} {command}"
    check.stop(port)  # a reader stops the earlier server before starting another on its port
    started = time.monotonic()
    with log.open("wb") as out:
        server = subprocess.Popen(
            ["bash", "-c", command],
            cwd=check.clone,
            env=check.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    check.servers[port] = server
    if wait_ok(port, server, started + SERVER_READY_S):
        return True, f"/ok answered on :{port} after {time.monotonic() - started:.1f} s"
    check.stop(port)
    return False, log.read_text(errors="replace")[-3000:]


def run_command(check: Check, command: str) -> tuple[bool, str]:
    """Run one README command to its end; ok when it exits 0."""
    if command.startswith("export "):
        for word in shlex.split(command.split("#", 1)[0])[1:]:
            name, _, value = word.partition("=")
            check.env[name] = value
        return True, "exported"
    if command.startswith("curl "):
        # curl exits 0 on an HTTP error; a README request that is refused has not worked.
        command = "curl --fail-with-body " + command.removeprefix("curl ")
    try:
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=check.clone,
            env=check.env,
            input=b"y\n",
            capture_output=True,
            timeout=COMMAND_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return False, f"no end after {COMMAND_TIMEOUT_S:.0f} s"
    output = (done.stdout + done.stderr).decode(errors="replace")
    if done.returncode != 0:
        return False, f"exit status {done.returncode}\n{output[-3000:]}"
    first = next((line for line in output.splitlines() if line.strip()), "")
    return True, first[:100]


def main() -> int:
    """Run the check; exit status 1 at the first README command that does not work."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="the repository to clone")
    parser.add_argument("--keep", action="store_true", help="keep the scratch clone")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="readme-check-"))
    clone = clone_repo(args.repo, scratch)
    check = Check(clone, fresh_env(clone))
    commands = readme_commands((clone / "README.md").read_text())
    print(f"readme-check: {len(commands)} commands from README.md, in {clone}", flush=True)
    failed = False
    try:
        for number, command in enumerate(commands, start=1):
            reason = skip_reason(command)
            if reason is not None:
                print(f"  skip  {command[:90]}  ({reason})", flush=True)
                continue
            local = check.localise(command)
            started = time.monotonic()
            if SERVER.search(local):
                ok, note = start_server(check, local, scratch / f"server-{number}.log")
            else:
                ok, note = run_command(check, local)
            took = time.monotonic() - started
            print(f"  {'ok' if ok else 'FAIL'}  {took:6.1f} s  {command[:90]}", flush=True)
            if not ok:
                print("\n".join("        " + line for line in note.splitlines()), flush=True)
                failed = True
                break
            print(f"                  → {note}", flush=True)
    finally:
        check.stop_all()
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    print("readme-check: " + ("FAILED" if failed else "every runnable command worked"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
