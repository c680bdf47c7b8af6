"""Metrics, structured logs and probes of the real server, as an operator sees them.

One server with three users, a dead OpenAI-compatible tier (a closed loopback port) in front of
the offline engine, a low request rate limit and a small per-thread token budget; one round of
traffic (a tool turn, a delete with approval, streams, a 401, 429s, a budget refusal), then
`/metrics` is scraped and parsed, and the server's stderr is read back as JSON lines.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]
from httpx_sse import EventSource, ServerSentEvent
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import REPO, LiveServer

pytestmark = pytest.mark.integration

ALICE = {"X-Api-Key": "k-alice-obs-7f3a"}
BOB = {"X-Api-Key": "k-bob-obs-1c9d"}
CAROL = {"X-Api-Key": "k-carol-obs-5e2b"}
RATE_LIMIT_RPM = 20
THREAD_TOKEN_BUDGET = 3000
ENV = {
    "TASKAGENT_API_KEYS": ",".join(
        f"{headers['X-Api-Key']}:{user}:write"
        for user, headers in (("alice", ALICE), ("bob", BOB), ("carol", CAROL))
    ),
    # A tier whose server is down: its calls fail at once, turns fall back to the offline engine.
    "OPENAI_BASE_URL": "http://127.0.0.1:1/v1",
    "TASKAGENT_MODEL_MAX_ATTEMPTS": "1",
    "TASKAGENT_BREAKER_THRESHOLD": "2",
    "TASKAGENT_BREAKER_COOLDOWN_S": "600",
    "TASKAGENT_RATE_LIMIT_RPM": str(RATE_LIMIT_RPM),
    "TASKAGENT_BUDGET_TOKENS_PER_THREAD": str(THREAD_TOKEN_BUDGET),
    "TASKAGENT_PRICES": json.dumps({"offline-engine": {"input": 1.0, "output": 2.0}}),
    # Answers stream at 30 ms a chunk, so a run is still going while the test looks at it.
    "TASKAGENT_OFFLINE_TOKEN_DELAY_MS": "30",
}
CREATE = "Create a high-priority task for the quarterly review due next Friday"
DOCS = REPO / "docs"
# Series Prometheus makes itself, not the server.
PROMETHEUS_OWN = frozenset({"up"})


@dataclass
class Traffic:
    """What the driven traffic produced, for the tests to check against."""

    created: dict[str, Any] = field(default_factory=dict)
    deleted: dict[str, Any] = field(default_factory=dict)
    during_streams: dict[str, float] = field(default_factory=dict)
    responses: dict[str, httpx.Response] = field(default_factory=dict)
    budget_refusal: dict[str, Any] = field(default_factory=dict)


def sse_events(
    stream: Iterator[ServerSentEvent], stop_after: int | None = None
) -> list[dict[str, Any]]:
    """Read SSE events as [{event, id, data}] from an event iterator, which can be resumed."""
    events: list[dict[str, Any]] = []
    for sse in stream:
        if sse.data:
            events.append({"event": sse.event, "id": sse.id, "data": sse.json()})
            if stop_after is not None and len(events) >= stop_after:
                break
    return events


def scrape(client: httpx.Client) -> dict[str, float]:
    """Scrape /metrics into {'name{label="value",...}': value} (labels sorted)."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def value(samples: dict[str, float], name: str, **labels: str) -> float:
    """The value of one series (0 when it does not exist)."""
    rendered = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return samples.get(f"{name}{{{rendered}}}", 0.0)


def names(samples: dict[str, float]) -> set[str]:
    """Every metric name in a scrape."""
    return {key.split("{", 1)[0] for key in samples}


def log_lines(server: LiveServer) -> list[dict[str, Any]]:
    """The server's output so far, each line parsed as JSON (every line must be JSON)."""
    lines = [line for line in list(server.output) if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"log line is not JSON: {line!r}")
    return parsed


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("observability") / "data", env=ENV)
    yield live
    live.stop()


@pytest.fixture(scope="module")
def traffic(server: LiveServer) -> Traffic:
    """Drive one round of everything the metrics should count."""
    seen = Traffic()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        # A tool-calling turn, with the client's own request id.
        created = client.post(
            "/chat", json={"message": CREATE}, headers={**ALICE, "X-Request-ID": "abc"}
        )
        assert created.status_code == 200, created.text
        seen.responses["created"] = created
        seen.created = created.json()
        thread = seen.created["thread_id"]
        # A deletion waits for approval, then runs.
        asked = client.post(
            "/chat", json={"message": "delete TASK-0001", "thread_id": thread}, headers=ALICE
        ).json()
        assert asked["interrupt"]["task_id"] == "TASK-0001"
        seen.deleted = client.post(
            "/chat", json={"thread_id": thread, "resume": {"approved": True}}, headers=ALICE
        ).json()
        assert seen.deleted["tool_calls"][0]["result"]["ok"] is True

        # Two streams on one thread: the second run queues behind the first.
        with client.stream("POST", "/chat/stream", json={"message": CREATE}, headers=ALICE) as one:
            seen.responses["stream"] = one
            one_events = EventSource(one).iter_sse()
            first = sse_events(one_events, stop_after=1)[0]
            assert first["event"] == "metadata"
            second_body = {"message": "list my tasks", "thread_id": first["data"]["thread_id"]}
            with client.stream("POST", "/chat/stream", json=second_body, headers=ALICE) as two:
                assert two.status_code == 200
                during = scrape(client)
                seen.during_streams = {
                    "active_streams": value(during, "taskagent_active_streams"),
                    "queued": value(during, "taskagent_runs_queued"),
                    "running": value(during, "taskagent_runs_running"),
                }
                assert sse_events(EventSource(two).iter_sse())[-1]["event"] == "done"
            assert sse_events(one_events)[-1]["event"] == "done"

        # A wrong key, a malformed body.
        seen.responses["401"] = client.post(
            "/chat", json={"message": "hi"}, headers={"X-Api-Key": "wrong-key-0000"}
        )
        seen.responses["422"] = client.post(
            "/chat",
            content=b"{not json",
            headers={**ALICE, "content-type": "application/json", "X-Request-ID": "bad id!"},
        )
        # Bob goes over his requests per minute.
        for _ in range(RATE_LIMIT_RPM + 5):
            answer = client.get("/chat/threads", headers=BOB)
            if answer.status_code == 429:
                seen.responses["429"] = answer
                break
        # Carol's long messages use up her thread's token budget.
        padded = "list my tasks " + "please " * 500
        body: dict[str, Any] = {"message": padded}
        for _ in range(5):
            turn = client.post("/chat", json=body, headers=CAROL).json()
            if turn["model_used"] == "budget":
                seen.budget_refusal = turn
                break
            body = {"message": padded, "thread_id": turn["thread_id"]}
    return seen


def test_metrics_count_runs_models_tools_and_limits(server: LiveServer, traffic: Traffic) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        samples = scrape(client)

    assert value(samples, "taskagent_runs_total", status="success") >= 6
    assert value(samples, "taskagent_run_duration_seconds_count", kind="chat") >= 6
    assert value(samples, "taskagent_time_to_first_token_seconds_count", kind="chat") >= 6
    assert value(samples, "taskagent_time_to_first_token_seconds_bucket", kind="chat", le="+Inf")

    # The dead tier failed twice, its breaker opened, later turns were refused at once.
    assert value(samples, "taskagent_model_calls_total", tier="openai", outcome="error") == 2
    assert value(samples, "taskagent_model_calls_total", tier="openai", outcome="refused") >= 4
    assert value(samples, "taskagent_breaker_opens_total", tier="openai") == 1
    assert value(samples, "taskagent_breaker_state", tier="openai") == 2
    assert value(samples, "taskagent_breaker_state", tier="offline") == 0
    fallbacks = value(samples, "taskagent_fallbacks_total", from_tier="openai", to_tier="offline")
    assert fallbacks >= 6
    offline_ok = value(samples, "taskagent_model_calls_total", tier="offline", outcome="ok")
    assert offline_ok >= 8

    assert value(samples, "taskagent_model_tokens_total", tier="offline", direction="input") > 0
    assert value(samples, "taskagent_model_tokens_total", tier="offline", direction="output") > 0
    assert value(samples, "taskagent_model_cost_usd_total", tier="offline") > 0

    assert value(samples, "taskagent_tool_calls_total", tool="create_task", outcome="ok") >= 2
    assert value(samples, "taskagent_tool_calls_total", tool="delete_task", outcome="ok") == 1

    assert "429" in traffic.responses, "bob was never rate limited"
    assert value(samples, "taskagent_rate_limit_rejections_total", kind="requests") == 1
    assert value(samples, "taskagent_http_requests_total", **route("GET /chat/threads 429")) == 1
    assert value(samples, "taskagent_http_requests_total", **route("POST /chat 401")) == 1
    assert value(samples, "taskagent_http_requests_total", **route("POST /chat 422")) == 1

    assert traffic.budget_refusal, "carol's thread never reached its token budget"
    assert "token budget" in traffic.budget_refusal["message"]
    assert value(samples, "taskagent_budget_rejections_total", kind="thread_tokens") == 1

    # While two streams were open, one run ran and the other waited for the thread.
    assert traffic.during_streams == {"active_streams": 2, "queued": 1, "running": 1}
    assert value(samples, "taskagent_active_streams") == 0
    assert value(samples, "taskagent_runs_queued") == value(samples, "taskagent_runs_running") == 0

    # Loop breakers did not fire, but their series exist so alerts see the first one.
    for reason in ("identical_call", "oscillation", "step_limit", "turn_timeout"):
        assert f'taskagent_runaway_stops_total{{reason="{reason}"}}' in samples
    assert value(samples, "taskagent_ready") == 1


def route(spec: str) -> dict[str, str]:
    """'POST /chat 401' as the labels of taskagent_http_requests_total."""
    method, path, status = spec.split()
    return {"method": method, "route": path, "status": status}


def referenced_metrics() -> dict[str, set[str]]:
    """Metric names used by the alert rules and the dashboard, by file."""
    pattern = re.compile(r"\b(taskagent_[a-z0-9_]+|up)\b(?=\s*[{\[)]|\s|$)")
    rules = yaml.safe_load((DOCS / "prometheus-alerts.yml").read_text())
    alert_exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    dashboard_exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    dashboard_exprs += [v["definition"] for v in dashboard["templating"]["list"]]
    return {
        "prometheus-alerts.yml": {m for e in alert_exprs for m in pattern.findall(e)},
        "grafana-dashboard.json": {m for e in dashboard_exprs for m in pattern.findall(e)},
    }


def test_alerts_and_dashboard_only_use_exported_metrics(
    server: LiveServer, traffic: Traffic
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        exported = names(scrape(client)) | PROMETHEUS_OWN
    referenced = referenced_metrics()
    assert len(referenced["prometheus-alerts.yml"]) >= 6
    assert len(referenced["grafana-dashboard.json"]) >= 15
    for doc, metric_names in referenced.items():
        missing = sorted(metric_names - exported)
        assert not missing, f"docs/{doc} uses metrics the server does not export: {missing}"


def test_request_ids_are_echoed_and_logged(server: LiveServer, traffic: Traffic) -> None:
    created = traffic.responses["created"]
    assert created.headers["x-request-id"] == "abc"
    # Every response carries one, errors and streams included; a malformed id is replaced.
    for name in ("stream", "401", "422", "429"):
        assert re.fullmatch(r"[0-9a-f]{32}", traffic.responses[name].headers["x-request-id"])
    with httpx.Client(base_url=server.url, timeout=30) as client:
        health = client.get("/health", headers={"X-Request-ID": "probe-1"})
        assert health.headers["x-request-id"] == "probe-1"
        time.sleep(0.2)  # the access line is written as the response goes out

    lines = log_lines(server)
    for line in lines:
        assert {"ts", "level", "logger", "message"} <= line.keys(), line
    mine = [line for line in lines if line.get("request_id") == "abc"]
    loggers = {line["logger"] for line in mine}
    assert {"uvicorn.access", "server.runs.engine", "taskagent.audit"} <= loggers, loggers
    access = next(line for line in mine if line["logger"] == "uvicorn.access")
    assert access["method"] == "POST" and access["path"] == "/chat" and access["status"] == 200
    assert access["user"] == "alice"

    run_lines = [line for line in lines if line.get("run_id") == traffic.created["run_id"]]
    assert len(run_lines) >= 3  # running, the tool call and its audit row, success
    for line in run_lines:
        assert line["thread_id"] == traffic.created["thread_id"], line
        assert line["user"] == "alice", line
        assert line["request_id"] == "abc", line
    # The audit row is a nested object on its line, not JSON inside a string.
    audit = next(line for line in run_lines if line["logger"] == "taskagent.audit")
    assert audit["audit"]["tool"] == "create_task" and audit["audit"]["kind"] == "tool"
    assert any(line.get("request_id") == "probe-1" for line in log_lines(server))


def test_ready_fails_while_a_database_cannot_be_written(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        ready = client.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {
            "status": "ready",
            "checks": {"tasks_db": "ok", "runs_db": "ok", "model": "ok"},
        }
        for database, check in (("tasks.sqlite", "tasks_db"), ("runs.sqlite", "runs_db")):
            holder = sqlite3.connect(server.data_dir / database, isolation_level=None, timeout=5)
            try:
                holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
                started = time.monotonic()
                blocked = client.get("/ready")
                assert time.monotonic() - started < 3
                assert blocked.status_code == 503
                assert blocked.headers["retry-after"] == "5"
                body = blocked.json()
                assert body["status"] == "not ready" and body["failed"] == [check]
                assert "locked" in body["checks"][check]
                # Liveness does not depend on the database.
                assert client.get("/health").status_code == 200
                assert value(scrape(client), "taskagent_ready") == 0
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            assert client.get("/ready").status_code == 200
        assert value(scrape(client), "taskagent_ready") == 1


def test_metrics_key_guards_the_scrape_and_text_logs(tmp_path: Path) -> None:
    key = "scrape-key-42"
    env = {"TASKAGENT_METRICS_KEY": key, "TASKAGENT_LOG_FORMAT": "text"}
    live = LiveServer(tmp_path / "data", env=env)
    try:
        with httpx.Client(base_url=live.url, timeout=30) as client:
            refused = client.get("/metrics")
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == "Bearer"
            wrong = client.get("/metrics", headers={"Authorization": "Bearer scrape-key-43"})
            assert wrong.status_code == 401
            scraped = client.get("/metrics", headers={"Authorization": f"Bearer {key}"})
            assert scraped.status_code == 200 and "taskagent_ready 1.0" in scraped.text
            assert client.get("/ready").status_code == 200  # probes stay open
            client.get("/health", headers={"X-Request-ID": "text-1"})
            time.sleep(0.2)  # the access line is written as the response goes out
    finally:
        output = live.stop()
    assert key not in output
    access = [line for line in output.splitlines() if 'request_id="text-1"' in line]
    assert len(access) == 1 and " INFO uvicorn.access: " in access[0], output[-2000:]
    assert not access[0].startswith("{")


def promtool() -> str:
    """Path to promtool, installing Debian's prometheus package when possible."""
    found = shutil.which("promtool")
    if found:
        return found
    if shutil.which("apt-get") is None:
        pytest.skip("promtool is not installed and apt-get is not available to install it")
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    for command in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", "prometheus"],
    ):
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"promtool is not installed and {' '.join(command)} failed: {exc}")
        if done.returncode != 0:
            pytest.skip(
                f"promtool is not installed and {' '.join(command)} exited {done.returncode}: "
                f"{done.stderr[-300:]}"
            )
    return shutil.which("promtool") or pytest.skip("prometheus installed without promtool")


ALERT_TESTS = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'taskagent_runaway_stops_total{{instance="a", reason="oscillation"}}'
        values: '0+1x30'
      - series: 'taskagent_runaway_stops_total{{instance="a", reason="step_limit"}}'
        values: '0x30'
      - series: 'taskagent_tool_calls_total{{instance="a", tool="create_task", outcome="ok"}}'
        values: '0+1x40'
      - series: 'taskagent_tool_calls_total{{instance="a", tool="create_task", outcome="error"}}'
        values: '0+1x40'
      - series: 'taskagent_breaker_state{{instance="a", tier="ollama"}}'
        values: '2x10'
      - series: 'taskagent_ready{{instance="a"}}'
        values: '1x10'
    alert_rule_test:
      - eval_time: 20m
        alertname: TaskagentLoopingAgent
        exp_alerts:
          - exp_labels: {{severity: warning, instance: a, reason: oscillation}}
            exp_annotations:
              summary: The agent keeps looping (oscillation) on a
              description: >-
                15 runaway stops (oscillation) in 15 minutes. A model or prompt change may
                make the agent repeat itself; check the runs in the logs (logger server.runs.engine)
                and the audit trail.
      - eval_time: 25m
        alertname: TaskagentToolErrorRate
        exp_alerts:
          - exp_labels: {{severity: warning, instance: a}}
            exp_annotations:
              summary: More than 20% of tool calls fail on a
              description: >-
                50% of tool calls ended in an error or a timeout over 10 minutes. Check the
                task database and TASKAGENT_TOOL_TIMEOUT_S.
      - eval_time: 6m
        alertname: TaskagentBreakerOpen
        exp_alerts:
          - exp_labels: {{severity: warning, instance: a, tier: ollama}}
            exp_annotations:
              summary: Model tier ollama has been unavailable for 5 minutes
              description: >-
                The circuit breaker of tier ollama is open: its calls fail and turns fall
                back to the next tier (answers say fallback_used). Check the model server.
      - eval_time: 9m
        alertname: TaskagentNotReady
        exp_alerts: []
"""


def test_alert_rules_are_valid_and_fire(tmp_path: Path) -> None:
    tool = promtool()
    rules = DOCS / "prometheus-alerts.yml"
    checked = subprocess.run(
        [tool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    cases = tmp_path / "alert-tests.yml"
    cases.write_text(ALERT_TESTS.format(rules=json.dumps(str(rules))))
    tested = subprocess.run(
        [tool, "test", "rules", str(cases)], capture_output=True, text=True, timeout=60
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
