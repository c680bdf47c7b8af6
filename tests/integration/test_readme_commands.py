"""`make readme-check` in `make test`: the README's commands work in a fresh clone, offline.

The clone's `make run` is the lean install: the check's venv holds the server's packages and
none of the dev tools, and the server there answers `/ok`, `/chat`, `/chat/stream`, the CLI.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import REPO

pytestmark = pytest.mark.integration

IMPORT_EVERY_MODULE = """
import importlib, pkgutil
for package in ("graph", "nodes", "tools", "models", "server"):
    for info in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
"""
DEV_ONLY = ("pytest", "playwright", "mypy", "ruff", "langgraph_cli", "langgraph_api", "pexpect")


def test_every_runnable_readme_command_works_in_a_fresh_clone():
    done = subprocess.run(
        [sys.executable, "scripts/readme_check.py", "--keep"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    found = re.search(r"commands from README.md, in (\S+)", done.stdout)
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        assert "every runnable command worked" in done.stdout
        assert re.search(r"ok .*make run", done.stdout)  # the install itself was checked
        assert found is not None
        site = Path(found.group(1)) / ".venv" / "lib" / "python3.11" / "site-packages"
        installed = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
        assert "fastapi" in installed and "langgraph" in installed
        assert not installed & set(DEV_ONLY), installed & set(DEV_ONLY)
        # Nothing the app imports, even lazily, is missing from the lean install.
        clone = Path(found.group(1))
        imported = subprocess.run(
            [str(clone / ".venv" / "bin" / "python"), "-c", IMPORT_EVERY_MODULE],
            cwd=clone,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert imported.returncode == 0, imported.stderr
    finally:
        if found is not None:
            shutil.rmtree(Path(found.group(1)).parent, ignore_errors=True)
