"""Node and the npm packages of tests/clients: installed when missing, once per test session.

npm's cache lives in the repository's git-ignored `.cache/npm`, so a repeat run installs
from disk; `node_modules` is rebuilt only when package-lock.json changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

CLIENTS = Path(__file__).resolve().parent
REPO = CLIENTS.parents[1]
NPM_CACHE = REPO / ".cache" / "npm"
# The JS SDK 1.15 and @langchain/core 1 declare `engines: node >= 20`.
MIN_NODE_MAJOR = 20


def _node_major(node: str) -> int:
    done = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    return int(done.stdout.strip().lstrip("v").split(".")[0])


def ensure_node() -> tuple[str | None, str]:
    """Return the path of a Node >= 20 with npm, installing Debian's if missing, or (None, why)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node and npm and _node_major(node) >= MIN_NODE_MAJOR:
        return node, ""
    if not (node and npm):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "nodejs", "npm"]):
            try:
                done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return None, f"{' '.join(command)} failed: {exc}"
            if done.returncode != 0:
                return None, f"{' '.join(command)} exited {done.returncode}: {done.stderr[-500:]}"
        node = shutil.which("node")
    if node is None:
        return None, "apt-get installed nodejs but `node` is not on PATH"
    if _node_major(node) >= MIN_NODE_MAJOR:
        return node, ""
    # Debian 12 ships Node 18: the `node` package from npm brings a newer binary.
    local = REPO / ".cache" / "node"
    bundled = local / "node_modules" / "node" / "bin" / "node"
    if not bundled.exists():
        npm_install(["install", "--prefix", str(local), f"node@{MIN_NODE_MAJOR}"], cwd=REPO)
    return (str(bundled), "") if bundled.exists() else (None, "npm could not install node@20")


def npm_install(args: list[str], cwd: Path) -> None:
    """Run `npm <args>` with the repository's npm cache; raise with npm's output if it fails."""
    command = ["npm", *args]
    done = subprocess.run(
        [*command, "--cache", str(NPM_CACHE), "--prefer-offline", "--no-audit", "--no-fund"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed in {cwd}:\n{done.stderr[-3000:]}")


def ensure_packages(folder: Path = CLIENTS) -> Path:
    """Install `folder`'s locked npm packages unless node_modules already matches the lock."""
    lock = folder / "package-lock.json"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    stamp = folder / "node_modules" / ".lock-sha256"
    if not stamp.exists() or stamp.read_text() != digest:
        npm_install(["ci"], cwd=folder)
        stamp.write_text(digest)
    return folder / "node_modules"


def run_script(node: str, script: Path, *args: str, timeout: float = 120) -> dict[str, Any]:
    """Run a Node script of tests/clients and return the JSON object it prints."""
    done = subprocess.run(
        [node, str(script), *args], cwd=CLIENTS, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{script.name} failed: {done.stderr[-3000:]}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert isinstance(result, dict)
    return result
