"""How `make readme-check` reads the README: which commands, which are skipped, which ports."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from scripts.readme_check import Check, readme_commands, skip_reason
from server.cli.render import ago

README = """
```
make run     # serve
```

```python
print("not shell")
```

```bash
# a comment
curl -s -X POST localhost:8000/chat \\
  -d '{"message":"hi"}'
.venv/bin/taskagent chat --thread <id>   # resume
PORT=8001 .venv/bin/taskagent serve
```

```
START → guard_input
```
"""


def test_commands_come_from_shell_blocks_with_continuations_joined():
    assert readme_commands(README) == [
        "make run     # serve",
        """curl -s -X POST localhost:8000/chat -d '{"message":"hi"}'""",
        ".venv/bin/taskagent chat --thread <id>   # resume",
        "PORT=8001 .venv/bin/taskagent serve",
    ]


def test_placeholders_models_and_long_suites_are_skipped():
    assert skip_reason(".venv/bin/taskagent chat --thread <id>") == "a placeholder to fill in"
    assert skip_reason("export TASKAGENT_API_KEY=tak_...") == "a placeholder to fill in"
    assert skip_reason("make test    # the whole suite") == "a long suite"
    assert skip_reason("OLLAMA_BASE_URL=http://127.0.0.1:11434 make run") is not None
    assert skip_reason("ollama pull qwen2.5:7b   # on the machine running Ollama") is not None
    assert skip_reason("HOST=0.0.0.0 make run") == "binds beyond loopback"
    assert skip_reason(".venv/bin/taskagent threads   # <b>not</b> a placeholder") is None
    assert skip_reason("make run") is None


def test_readme_ports_map_to_free_ones_consistently():
    check = Check(Path("."), {})
    first = check.localise("curl -s localhost:8000/ok && curl 127.0.0.1:8000/health")
    other = check.localise("PORT=8001 .venv/bin/taskagent serve")
    port, second = check.ports[8000], check.ports[8001]
    assert first == f"curl -s localhost:{port}/ok && curl 127.0.0.1:{port}/health"
    assert other == f"PORT={second} .venv/bin/taskagent serve"
    assert port != second


def test_thread_times_read_as_people_say_them():
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    stamp = lambda delta: (now - delta).isoformat()  # noqa: E731
    assert ago(stamp(timedelta(seconds=20)), now) == "just now"
    assert ago(stamp(timedelta(minutes=5)), now) == "5 min ago"
    assert ago(stamp(timedelta(hours=3)), now) == "3 h ago"
    assert ago(stamp(timedelta(hours=30)), now) == "yesterday"
    assert ago(stamp(timedelta(days=4)), now) == "4 days ago"
    assert ago(stamp(timedelta(days=40)), now) == "2026-10-28"
    assert ago("not a time", now) == "not a time"
