"""Schemathesis against the OpenAPI spec of a real server with three API keys.

One server (offline engine) runs with keys for `alice` (write), `bob` (write) and `root`
(admin). Alice owns a chat thread with a run and a task, an Agent-protocol thread with
secret metadata and a run, and a thread paused on a deletion approval. Every operation of
the spec is then fuzzed as bob, positive and negative data, and each generated request is
sent three ways: as generated, with the ids in it replaced by bob's own (so the fuzzer
reaches past the 404 of a random id), and with them replaced by alice's. The admin-only
`GET /audit` is also sent as the admin. A few hand-written requests carry what hypothesis
never generates (an unpaired surrogate escape, a metadata key the checkpointer rejects).
Checks:

- `not_a_server_error`: no 5xx, on any operation, streams included;
- `response_schema_conformance`, `content_type_conformance`, `response_headers_conformance`
  and `negative_data_rejection` where the spec declares something (see SCHEMA_CHECKS);
- `ignored_auth`: every 2xx answer, re-sent without a key and with a wrong one, must be 401.
  FastAPI's spec shows the key only as two optional header parameters, so the test
  declares the security schemes the server actually enforces before loading the spec;
- `auth_required` (ours): the first requests of every operation but the probes
  (PUBLIC_PATHS), sent without a key, with a wrong `X-Api-Key` and with a wrong bearer
  token, are 401 with `WWW-Authenticate: Bearer`, whatever else is wrong with them;
- `object_level_authorization` (ours): no answer to bob contains alice's thread ids, run
  ids, task title or metadata (unless bob put that string in the request himself, as in
  "Thread <id> not found."), and every request naming alice's ids is refused with 404
  (creating a thread with her thread id: 409, the id is taken; see `refused_as_not_found`).

Afterwards alice's thread, runs and task are checked to be intact, and the counts
(operations, requests the server logged, failures) are printed.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import requests  # type: ignore[import-untyped]
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
)

from tests.integration.conftest import LiveServer

pytestmark = [
    pytest.mark.integration,
    # hypothesis-jsonschema registers its e-mail formats on every strategy it builds.
    pytest.mark.filterwarnings("ignore:Overriding standard format"),
]

KEYS = {"alice": "k-alice-fz-4b1e", "bob": "k-bob-fz-90c2", "root": "k-root-fz-77de"}
ROLES = {"alice": "write", "bob": "write", "root": "admin"}
WRONG_KEY = "k-bob-fz-90c3"  # one character off bob's
REQUEST_TIMEOUT_S = 30
# A thread's joined stream (`GET /threads/{id}/stream`) stays open for as long as the client
# does, as on langgraph dev: a GET event stream is read this long, then closed by the client.
OPEN_STREAM_READ_S = 1.0


class BoundedStreams(requests.adapters.HTTPAdapter):  # type: ignore[misc]
    """Reads a GET event stream for OPEN_STREAM_READ_S and hangs up; every other body whole."""

    def send(self, request: Any, stream: bool = False, **kwargs: Any) -> Any:
        response = super().send(request, stream=True, **kwargs)
        endless = request.method == "GET" and response.headers.get("content-type", "").startswith(
            "text/event-stream"
        )
        if not endless:
            if not stream:
                _ = response.content  # read whole, as requests does unless asked to stream
            return response
        chunks: list[bytes] = []

        def read() -> None:
            try:
                chunks.extend(response.raw.stream(1024, decode_content=True))
            except Exception:  # noqa: BLE001 - the hang-up below ends the read
                pass

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(OPEN_STREAM_READ_S)
        # Closing alone leaves the reader blocked in recv(); a shutdown wakes it up.
        sock = getattr(getattr(response.raw, "_connection", None), "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        response.close()
        reader.join(5)
        response._content = b"".join(chunks)
        response._content_consumed = True
        return response


def bounded_session() -> requests.Session:
    """A session whose open-ended streams end (see BoundedStreams)."""
    session = requests.Session()
    session.mount("http://", BoundedStreams())
    return session


# Examples per operation and generation mode (positive, negative); each example is sent up
# to three times (as generated, with bob's ids, with alice's ids) plus the auth probes.
EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 15}
AUTH_PROBED_EXAMPLES = 2  # per operation: no key, wrong X-Api-Key, wrong bearer → 401

# Probes a load balancer or the SDK may call before it has a key.
PUBLIC_PATHS = frozenset({"/health", "/ok", "/info"})
# Admin-only: sent as bob (must be refused) and as the admin `root` (fuzzed).
ADMIN_PATHS = frozenset({"/audit"})

# Every check applies wherever the spec declares what it checks. Not enabled:
# - status_code_conformance: most routes declare only 200 and 422, yet answer 401 (no key),
#   403, 404 (not yours) and 409 (busy/pending) by design; it would flag every operation.
#   The undocumented codes seen are printed instead (UNDOCUMENTED in the report).
# - positive_data_acceptance: schema-valid requests name random thread/run ids, which are
#   rightly 404.
SCHEMA_CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
    negative_data_rejection,
    ignored_auth,
]


@dataclass
class Principal:
    name: str
    headers: dict[str, str]


ALICE = Principal("alice", {"X-Api-Key": KEYS["alice"]})
BOB = Principal("bob", {"X-Api-Key": KEYS["bob"]})
ROOT = Principal("root", {"Authorization": f"Bearer {KEYS['root']}"})


@dataclass
class Owned:
    """The ids a user's seeded data has (and, for alice, the strings bob must never see)."""

    chat_thread: str = ""
    chat_run: str = ""
    agent_thread: str = ""
    agent_run: str = ""
    interrupted_thread: str = ""
    task_id: str = ""
    task_title: str = ""
    metadata_secret: str = ""

    def threads(self) -> list[str]:
        return [t for t in (self.chat_thread, self.agent_thread, self.interrupted_thread) if t]

    def secrets(self) -> dict[str, str]:
        values = {
            "chat thread id": self.chat_thread,
            "chat run id": self.chat_run,
            "agent thread id": self.agent_thread,
            "agent run id": self.agent_run,
            "interrupted thread id": self.interrupted_thread,
            "task title": self.task_title,
            "thread metadata": self.metadata_secret,
        }
        return {name: value for name, value in values.items() if value}


@dataclass
class Finding:
    operation: str
    check: str
    variant: str
    status: int
    request: str
    response: str

    def key(self) -> tuple[str, str, str]:
        return (self.operation, self.check, self.variant)

    def __str__(self) -> str:
        return (
            f"[{self.check}] {self.operation} ({self.variant}) -> {self.status}\n"
            f"    request:  {self.request}\n    response: {self.response}"
        )


@dataclass(repr=False)
class Stats:
    operations: set[str] = field(default_factory=set)
    sent: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    examples: Counter[str] = field(default_factory=Counter)
    unsatisfiable: list[str] = field(default_factory=list)
    undocumented: dict[str, set[int]] = field(default_factory=dict)
    findings: dict[tuple[str, str, str], Finding] = field(default_factory=dict)
    occurrences: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, finding: Finding) -> None:
        self.occurrences[finding.key()] += 1
        self.findings.setdefault(finding.key(), finding)


# --------------------------------------------------------------------------- the server


def _env() -> dict[str, str]:
    keys = ",".join(f"{KEYS[u]}:{u}:{ROLES[u]}" for u in KEYS)
    return {
        "TASKAGENT_API_KEYS": keys,
        "TASKAGENT_LOG_LEVEL": "INFO",
        # Thousands of deliberate wrong-key probes come from this one address; the limit on
        # failed authentications per address has its own test (test_audit_flood.py).
        "TASKAGENT_AUTH_FAILURES_PER_MINUTE": "0",
    }


def _chat(client: httpx.Client, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/chat", json=body, headers=who.headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def seed(client: httpx.Client, who: Principal, word: str) -> Owned:
    """Give `who` a chat thread with a run and a task, an agent thread with a run, a pause."""
    owned = Owned(metadata_secret=f"{who.name}-meta-{uuid.uuid4().hex[:10]}")
    made = _chat(client, who, {"message": f"add a task to feed the {word} quokka"})
    task = made["tool_calls"][0]["result"]["task"]
    owned.chat_thread, owned.chat_run = made["thread_id"], made["run_id"]
    owned.task_id, owned.task_title = task["id"], task["title"]
    assert word in owned.task_title.lower()

    thread = client.post(
        "/threads", json={"metadata": {"project": owned.metadata_secret}}, headers=who.headers
    )
    assert thread.status_code == 200, thread.text
    owned.agent_thread = thread.json()["thread_id"]
    waited = client.post(
        f"/threads/{owned.agent_thread}/runs/wait",
        json={
            "assistant_id": "agent",
            "input": {"messages": [{"role": "user", "content": "list my tasks"}]},
        },
        headers=who.headers,
    )
    assert waited.status_code == 200, waited.text
    owned.agent_run = waited.headers["content-location"].rsplit("/", 1)[-1]

    paused = _chat(client, who, {"message": f"delete {owned.task_id}"})
    assert paused["interrupt"] is not None, paused
    owned.interrupted_thread = paused["thread_id"]
    return owned


def alice_rows(data_dir: Path, owned: Owned) -> dict[str, Any]:
    """Alice's rows, read through read-only connections of our own."""

    def query(db: str, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(f"file:{data_dir / db}?mode=ro", uri=True)) as conn:
            return conn.execute(sql, params).fetchall()

    threads = tuple(owned.threads())
    marks = ", ".join("?" * len(threads))
    return {
        "tasks": query("tasks.sqlite", "SELECT * FROM tasks WHERE owner = 'alice'", ()),
        "threads": query(
            "tasks.sqlite",
            f"SELECT thread_id, owner, title, status, metadata FROM threads"
            f" WHERE thread_id IN ({marks}) ORDER BY thread_id",
            threads,
        ),
        "runs": query(
            "runs.sqlite",
            f"SELECT run_id, thread_id, owner, status FROM runs WHERE thread_id IN ({marks})"
            " ORDER BY run_id",
            threads,
        ),
    }


# --------------------------------------------------------------------------- the spec


def secured_spec(raw: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """Declare the key the server enforces; return the spec and the secured operations.

    FastAPI shows the `X-Api-Key` / `Authorization` dependency as two optional header
    parameters. Those are replaced by security schemes (either one suffices), which lets
    schemathesis's `ignored_auth` know which operations need a key.
    """
    spec = copy.deepcopy(raw)
    spec.setdefault("components", {})["securitySchemes"] = {
        "ApiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
        "Bearer": {"type": "http", "scheme": "bearer"},
    }
    secured: set[str] = set()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            params = operation.get("parameters", [])
            auth = [
                p
                for p in params
                if p.get("in") == "header" and p["name"].lower() in ("x-api-key", "authorization")
            ]
            if auth:
                operation["parameters"] = [p for p in params if p not in auth]
                operation["security"] = [{"ApiKey": []}, {"Bearer": []}]
                secured.add(f"{method.upper()} {path}")
    return spec, secured


# --------------------------------------------------------------------------- the harness


def _request_text(request: requests.PreparedRequest | None) -> str:
    if request is None:
        return "?"
    body = request.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    text = f"{request.method} {request.url}"
    if body:
        text += f" body={str(body)[:300]}"
    return text


def _excerpt(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


class Harness:
    """Sends each generated case as bob in its variants and records what the checks find."""

    def __init__(self, url: str, alice: Owned, bob: Callable[[], Owned], stats: Stats) -> None:
        self.url = url
        self.alice = alice
        self.bob = bob
        self.stats = stats
        self.session = bounded_session()
        self.auth_probed: Counter[str] = Counter()
        self.rotation = 0
        self.bob_changed = False

    # -- sending ----------------------------------------------------------------------

    def send(self, case: Case, variant: str, headers: dict[str, str]) -> Any:
        self.stats.sent[variant] += 1
        try:
            response = case.call(
                base_url=self.url,
                session=self.session,
                headers=headers,
                timeout=REQUEST_TIMEOUT_S,
            )
        except requests.RequestException as exc:
            self.stats.add(
                Finding(
                    operation=case.operation.label,
                    check="No response",
                    variant=variant,
                    status=0,
                    request=f"{case.method} {case.formatted_path} query={case.query} "
                    f"body={_excerpt(json.dumps(case.body, default=str), 300)}",
                    response=f"{type(exc).__name__}: {_excerpt(str(exc), 200)}",
                )
            )
            return None
        self.stats.statuses[response.status_code] += 1
        if response.status_code >= 500:
            # The server closes the connection after an unhandled error: start a new one,
            # or the next request would fail for this one's sake.
            self.session.close()
            self.session = bounded_session()
        if case.method == "DELETE" and response.status_code == 204:
            self.bob_changed = True  # bob's thread or run may be gone: re-seed before reuse
        return response

    def record(self, case: Case, variant: str, check: str, response: Any, note: str = "") -> None:
        self.stats.add(
            Finding(
                operation=case.operation.label,
                check=check,
                variant=variant,
                status=response.status_code,
                request=_request_text(getattr(response, "request", None)),
                response=_excerpt((note + " " if note else "") + response.text),
            )
        )

    def validate(self, case: Case, variant: str, response: Any, headers: dict[str, str]) -> None:
        checks = list(SCHEMA_CHECKS)
        if (
            variant != "generated"
            or not _negated_beyond_auth(case)
            or _query_lost_in_transit(case, response)
        ):
            # The variants carry the generated case's metadata, but swapping in real ids
            # can make a negative case valid; and a case negative only in its (missing)
            # key headers gets a valid key from us.
            checks.remove(negative_data_rejection)
        try:
            case.validate_response(
                response,
                checks=checks,
                headers=headers,
                transport_kwargs={
                    "base_url": self.url,
                    "headers": headers,
                    "timeout": REQUEST_TIMEOUT_S,
                },
            )
        except FailureGroup as group:
            for failure in group.exceptions:
                self._failure(case, variant, response, failure)
        except Failure as failure:
            self._failure(case, variant, response, failure)
        operation = case.operation
        documented = {str(code) for code in operation.definition.raw.get("responses", {})}
        if str(response.status_code) not in documented and "default" not in documented:
            self.stats.undocumented.setdefault(operation.label, set()).add(response.status_code)

    def _failure(self, case: Case, variant: str, response: Any, failure: Failure) -> None:
        if _valid_as_sent(case, response, failure.message):
            return
        self.record(case, variant, failure.title, response, _excerpt(failure.message, 300))

    # -- variants ---------------------------------------------------------------------

    def with_ids(self, case: Case, owned: Owned, *, thread_index: int) -> tuple[Case, bool] | None:
        """Return a copy of `case` naming `owned`'s thread and run wherever it names any.

        The flag says whether a thread or run id was swapped in (rather than only the
        metadata a thread search filters on).
        """
        threads = owned.threads()
        thread = threads[thread_index % len(threads)]
        # The interrupted thread gets the chat run: a run of another thread of hers.
        run = owned.agent_run if thread == owned.agent_thread else owned.chat_run
        path = dict(case.path_parameters or {})
        query = dict(case.query or {})
        body: Any = copy.deepcopy(case.body) if isinstance(case.body, dict) else case.body
        named = False
        for name, value in (("thread_id", thread), ("run_id", run)):
            if name in path:
                path[name], named = value, True
            if name in query:
                query[name], named = value, True
            if isinstance(body, dict) and name in body:
                body[name], named = value, True
        searched = False
        if case.path == "/threads/search" and isinstance(body, dict):
            # Search by her metadata; elsewhere metadata is written, and bob writing her
            # string into his own thread is not a leak.
            body["metadata"], searched = {"project": owned.metadata_secret}, True
        if not (named or searched):
            return None
        variant = case.operation.Case(
            method=case.method,
            path_parameters=path,
            headers=dict(case.headers or {}),
            cookies=dict(case.cookies or {}),
            query=query,
            body=body,
            media_type=case.media_type,
            _meta=case.meta,
        )
        return variant, named

    # -- one generated case -----------------------------------------------------------

    def exercise(self, case: Case) -> None:
        label = case.operation.label
        for name in ("X-Api-Key", "Authorization"):
            # Keys schemathesis generated for the security schemes: we send our own.
            if case.headers and name in case.headers:
                del case.headers[name]
        self.stats.examples[label] += 1
        self.rotation += 1
        response = self.send(case, "generated", BOB.headers)
        if response is not None:
            self.validate(case, "generated", response, BOB.headers)
            self.no_leak(case, "generated", response)

        own = self.with_ids(case, self.bob(), thread_index=self.rotation)
        if own is not None:
            answer = self.send(own[0], "bob's ids", BOB.headers)
            if answer is not None:
                self.validate(own[0], "bob's ids", answer, BOB.headers)
                self.no_leak(own[0], "bob's ids", answer)

        theirs = self.with_ids(case, self.alice, thread_index=self.rotation)
        if theirs is not None:
            variant, named = theirs
            answer = self.send(variant, "alice's ids", BOB.headers)
            if answer is not None:
                self.validate(variant, "alice's ids", answer, BOB.headers)
                self.no_leak(variant, "alice's ids", answer)
                if named and response is not None:
                    self.refused_as_not_found(variant, response, answer)

        if case.path in ADMIN_PATHS:
            # Bob may not read it at all; the admin's answers are fuzzed for 5xx and schema.
            if response is not None and response.status_code < 300:
                self.record(case, "generated", "object_level_authorization", response, "2xx:")
            answer = self.send(case, "as admin", ROOT.headers)
            if answer is not None:
                self.validate(case, "as admin", answer, ROOT.headers)

        public = case.path in PUBLIC_PATHS
        if not public and self.auth_probed[label] < AUTH_PROBED_EXAMPLES:
            self.auth_probed[label] += 1
            self.auth_required(case)

    # -- our checks -------------------------------------------------------------------

    def no_leak(self, case: Case, variant: str, response: Any) -> None:
        """No answer to bob may carry alice's data, except strings bob sent himself."""
        sent = _request_text(getattr(response, "request", None))
        sent += json.dumps(case.body, default=str) if isinstance(case.body, dict | list) else ""
        text = response.text
        leaked = [
            name
            for name, value in self.alice.secrets().items()
            if value in text and value not in sent
        ]
        if leaked:
            self.record(
                case,
                variant,
                "object_level_authorization",
                response,
                f"bob received alice's {', '.join(leaked)}:",
            )

    def refused_as_not_found(self, case: Case, generated: Any, response: Any) -> None:
        """A request naming alice's ids is 404 (409 only for re-creating her thread id)."""
        status = response.status_code
        if 200 <= status < 300:
            self.record(case, "alice's ids", "object_level_authorization", response, "2xx:")
            return
        if generated.status_code in (401, 403, 422) or status in (403, 422):
            return  # refused before any id was looked at (invalid request, admins only)
        creates_thread = case.method == "POST" and case.path == "/threads"
        allowed = {404, 409} if creates_thread else {404}
        if status not in allowed:
            self.record(
                case,
                "alice's ids",
                "object_level_authorization",
                response,
                f"expected 404 for alice's ids, got {status}:",
            )

    def auth_required(self, case: Case) -> None:
        for variant, headers in (
            ("no key", {}),
            ("wrong X-Api-Key", {"X-Api-Key": WRONG_KEY}),
            ("wrong bearer", {"Authorization": f"Bearer {WRONG_KEY}"}),
        ):
            response = self.send(case, variant, headers)
            if response is None:
                continue
            challenge = response.headers.get("www-authenticate") or []
            if response.status_code != 401:
                self.record(case, variant, "auth_required", response, "expected 401:")
            elif "Bearer" not in challenge:
                self.record(case, variant, "auth_required", response, "no WWW-Authenticate:")


def _negated_beyond_auth(case: Case) -> bool:
    """Whether a negative case is invalid in more than its (required) key headers."""
    meta = case.meta
    if meta is None:
        return False
    negated = {location for location, info in meta.components.items() if info.mode.is_negative}
    return bool(negated - {ParameterLocation.HEADER})


def _query_lost_in_transit(case: Case, response: Any) -> bool:
    """Whether a generated query value never reached the server as generated.

    A negated `string | null` query parameter can come out as an empty object or list, which
    serializes to no parameter at all, or as a number, which serializes to its text: the
    request that went out is then a valid one.
    """
    request = getattr(response, "request", None)
    url = str(getattr(request, "url", "") or "")
    sent = {key for key, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
    if any(key not in sent for key in case.query or {}):
        return True
    # A number, boolean or null "violating" a string parameter goes out as its text.
    schemas = {
        p["name"]: json.dumps(p.get("schema", {}))
        for p in case.operation.definition.raw.get("parameters", [])
        if p.get("in") == "query"
    }
    return any(
        _sent_as_text(value, schemas.get(key, "")) for key, value in (case.query or {}).items()
    )


def _valid_as_sent(case: Case, response: Any, message: str) -> bool:
    """Whether a "should have been rejected" finding is about a query value that, as sent
    (text), satisfies its parameter's schema: a query string carries no types.

    schemathesis judges the generated value (or reads "0" back as a number), not the text the
    server received; the server validates that text and rightly accepts it.
    """
    found = re.search(r"parameter `([^`]+)` in query", message)
    if found is None or "should have been rejected" not in message:
        return False
    name = found.group(1)
    params = case.operation.definition.raw.get("parameters", [])
    param = next((p for p in params if p.get("name") == name and p.get("in") == "query"), None)
    if param is None:
        return False
    url = str(getattr(getattr(response, "request", None), "url", "") or "")
    sent = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    if name not in sent:
        return not param.get("required", False)
    schema = param.get("schema", {})
    options = schema.get("anyOf", [schema])
    text = sent[name]
    return any(
        option.get("type") == "string"
        and option.get("minLength", 0) <= len(text) <= option.get("maxLength", len(text))
        for option in options
    )


def _sent_as_text(value: Any, schema: str) -> bool:
    """Whether a query value that is not a string becomes a string the schema accepts."""
    if '"string"' not in schema:
        return False
    if isinstance(value, list):
        return '"array"' in schema and any(_sent_as_text(item, schema) for item in value)
    if isinstance(value, str):
        # The other way round: schemathesis reads a query text such as "92863986" or "null"
        # back as a number or null, and reports a valid string as one that violates `string`.
        try:
            return not isinstance(json.loads(value), str)
        except ValueError:
            return False
    return value is None or isinstance(value, int | float)


def negatable(operation: Any) -> bool:
    """Whether schemathesis can generate negative data: a body or query, no path parameter.

    Path parameters and the remaining headers are unconstrained strings. Schemathesis 4.15
    still tries to negate a path parameter in negative mode and gives up (Unsatisfiable)
    after seconds of searching; RunCreate and ThreadSearch bodies get their negative cases
    on `POST /runs/stream` and `POST /threads/search`.
    """
    params = operation.definition.raw.get("parameters", [])
    if any(p.get("in") == "path" for p in params):
        return False
    return "requestBody" in operation.definition.raw or any(p.get("in") == "query" for p in params)


def fuzz_operation(harness: Harness, operation: Any, mode: GenerationMode, examples: int) -> None:
    strategy = operation.as_strategy(generation_mode=mode)

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(case=strategy)
    def run(case: Case) -> None:
        harness.exercise(case)

    try:
        run()
    except Unsatisfiable:
        harness.stats.unsatisfiable.append(f"{operation.label} ({mode.value})")


LONE_SURROGATE = "\ud800"  # valid JSON ("\\ud800"), not encodable as UTF-8


def hostile_requests(bob: Owned) -> list[tuple[str, str, dict[str, Any]]]:
    """Requests with strings hypothesis does not generate: unpaired surrogates, bad keys."""
    s = LONE_SURROGATE
    deep: dict[str, Any] = {}
    level = deep
    for _ in range(900):
        level["a"] = {}
        level = level["a"]
    run = {"assistant_id": "agent", "input": {"messages": [{"role": "user", "content": "hi"}]}}
    return [
        ("POST", "/chat", {"message": f"add a task to buy milk {s}"}),
        ("POST", "/chat/stream", {"message": f"add a task to buy milk {s}"}),
        ("POST", "/chat", {"message": "list my tasks", "thread_id": s}),
        ("POST", "/threads", {"metadata": {"project": s}}),
        ("POST", "/threads", {"metadata": {s: 1}}),
        ("POST", "/threads/search", {"metadata": {"project": s}}),
        ("PATCH", f"/threads/{bob.agent_thread}", {"metadata": {"project": s}}),
        ("POST", f"/threads/{bob.agent_thread}/history", {"metadata": {"not a key": 1}}),
        ("POST", f"/threads/{bob.agent_thread}/runs", {**run, "metadata": {"project": s}}),
        (
            "POST",
            f"/threads/{bob.agent_thread}/runs/wait",
            {"assistant_id": "agent", "input": {"messages": [{"role": "user", "content": s}]}},
        ),
        # What the fuzzer found once (each was a 500): see test_fuzz_regressions.py.
        ("POST", "/threads/search", {"metadata": {'a"b': 1, "$[0]": 2}}),
        ("POST", "/threads/search", {"offset": 2**63, "limit": 2**63}),
        ("POST", "/threads", {"metadata": deep}),
        ("PATCH", f"/threads/{bob.agent_thread}", {"metadata": deep}),
        ("POST", f"/threads/{bob.agent_thread}/runs", {**run, "metadata": deep}),
        ("POST", "/tasks", {"title": "t", "tags": ["x" * 100_000]}),
        ("GET", f"/threads/{bob.agent_thread}/runs?offset={2**63}", {}),
    ]


def send_hostile(url: str, bob: Callable[[], Owned], stats: Stats) -> None:
    """Send each hostile request on a fresh connection; anything but a 4xx or 2xx is a finding."""
    owned = bob()
    for method, path, body in hostile_requests(owned):
        raw = json.dumps(body).encode()  # ensure_ascii: the surrogate travels as an escape
        stats.sent["hostile strings"] += 1
        label = f"{method} {path.replace(owned.agent_thread, '{thread_id}')}"
        request = f"{method} {path} body={raw.decode()[:200]}"
        try:
            with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as client:
                response = client.request(
                    method,
                    path,
                    content=raw,
                    headers={**BOB.headers, "content-type": "application/json"},
                )
        except httpx.HTTPError as exc:
            stats.add(Finding(label, "No response", "hostile strings", 0, request, repr(exc)))
            continue
        stats.statuses[response.status_code] += 1
        if response.status_code >= 500:
            stats.add(
                Finding(
                    label,
                    "Server error",
                    "hostile strings",
                    response.status_code,
                    request,
                    _excerpt(response.text),
                )
            )


# --------------------------------------------------------------------------- the test


@dataclass(repr=False)
class FuzzRun:
    stats: Stats
    seconds: float
    logged_requests: int
    alice_before: dict[str, Any]
    alice_after: dict[str, Any]
    alice_still_sees: dict[str, int]
    unsecured: list[str]
    log: str


ACCESS_LOG = re.compile(r'"(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) [^"]*" \d{3}')


class DrainedServer:
    """A LiveServer whose output is read while it runs.

    LiveServer reads the server's stdout pipe only in `stop()`; a server that logs more
    than the pipe holds (64 KiB: a few hundred requests with access and audit logs) would
    block on its next log line and stop answering.
    """

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.server = LiveServer(data_dir, env=env)
        self.url = self.server.url
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        stream = self.server.proc.stdout
        assert stream is not None
        for line in stream:
            self._lines.append(line)

    def stop(self) -> str:
        proc = self.server.proc
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._reader.join(timeout=10)
        return "".join(self._lines)


@pytest.fixture(scope="module")
def fuzz_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzRun]:
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    server = DrainedServer(data_dir, env=_env())
    log = ""
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            alice = seed(client, ALICE, "zephyrine")
            bob_owned = [seed(client, BOB, "bartholomew")]
            alice_before = alice_rows(data_dir, alice)
            raw = client.get("/openapi.json").json()

            def bob() -> Owned:
                # Fuzzing deletes bob's threads and runs now and then: re-seed after that.
                if harness.bob_changed:
                    harness.bob_changed = False
                    bob_owned[0] = seed(client, BOB, "bartholomew")
                return bob_owned[0]

            spec, secured = secured_spec(raw)
            schema = schemathesis.openapi.from_dict(spec)
            stats = Stats()
            harness = Harness(server.url, alice, bob, stats)
            started = time.perf_counter()
            for result in schema.get_all_operations():
                assert isinstance(result, Ok), result
                operation = result.ok()
                stats.operations.add(operation.label)
                for mode, examples in EXAMPLES.items():
                    if mode is GenerationMode.NEGATIVE and not negatable(operation):
                        continue
                    began = time.perf_counter()
                    fuzz_operation(harness, operation, mode, examples)
                    stats.seconds[f"{operation.label} ({mode.value})"] = time.perf_counter() - began
            send_hostile(server.url, bob, stats)
            seconds = time.perf_counter() - started

            alice_after = alice_rows(data_dir, alice)
            still = {
                t: client.get(f"/threads/{t}", headers=ALICE.headers).status_code
                for t in alice.threads()
            }
            still[alice.chat_run] = client.get(
                f"/chat/runs/{alice.chat_run}/stream", headers=ALICE.headers
            ).status_code
    finally:
        log = server.stop()
        (data_dir.parent / "server.log").write_text(log)
    yield FuzzRun(
        stats=stats,
        seconds=seconds,
        logged_requests=len(ACCESS_LOG.findall(log)),
        alice_before=alice_before,
        alice_after=alice_after,
        alice_still_sees=still,
        unsecured=sorted(
            f"{method.upper()} {path}"
            for path, operations in raw["paths"].items()
            for method in operations
            if f"{method.upper()} {path}" not in secured and path not in PUBLIC_PATHS
        ),
        log=log,
    )


def report(run: FuzzRun) -> None:
    stats = run.stats
    failures = sum(stats.occurrences.values())
    print(
        f"\nschemathesis fuzz: {len(stats.operations)} operations, "
        f"{sum(stats.examples.values())} generated cases, "
        f"{sum(stats.sent.values())} requests sent by the test "
        f"({dict(stats.sent)}), {run.logged_requests} requests logged by the server "
        f"(includes ignored_auth's re-sends), {run.seconds:.1f}s; "
        f"{failures} failing responses in {len(stats.findings)} distinct findings"
    )
    print(f"statuses: {dict(sorted(stats.statuses.items()))}")
    if run.unsecured:
        print(f"operations the spec shows without a key (and not public probes): {run.unsecured}")
    slow = sorted(stats.seconds.items(), key=lambda item: -item[1])[:8]
    print("slowest: " + ", ".join(f"{label} {seconds:.1f}s" for label, seconds in slow))
    if stats.unsatisfiable:
        print(f"no cases could be generated for: {stats.unsatisfiable}")
    if stats.undocumented:
        print("undocumented status codes (status_code_conformance is off, see SCHEMA_CHECKS):")
        for label, codes in sorted(stats.undocumented.items()):
            print(f"  {label}: {sorted(codes)}")
    for key, finding in sorted(stats.findings.items()):
        print(f"{finding}\n    ({stats.occurrences[key]} occurrence(s))")


def findings(run: FuzzRun, checks: set[str]) -> list[str]:
    stats = run.stats
    return [
        f"{finding}\n    ({stats.occurrences[key]} occurrence(s))"
        for key, finding in sorted(stats.findings.items())
        if finding.check in checks
    ]


def test_every_operation_was_fuzzed(fuzz_run: FuzzRun) -> None:
    report(fuzz_run)
    assert len(fuzz_run.stats.operations) >= 30
    assert set(fuzz_run.stats.examples) == fuzz_run.stats.operations
    assert fuzz_run.seconds < 150


def test_no_server_errors(fuzz_run: FuzzRun) -> None:
    found = findings(fuzz_run, {"Server error", "No response"})
    assert not found, "\n".join(found)
    if "Traceback" in fuzz_run.log:
        start = fuzz_run.log.index("Traceback")
        raise AssertionError(
            f"the server logged an exception:\n{fuzz_run.log[start : start + 4000]}"
        )


def test_responses_conform_to_the_spec(fuzz_run: FuzzRun) -> None:
    titles = {f.check for f in fuzz_run.stats.findings.values()}
    ours = {"object_level_authorization", "auth_required", "Server error", "No response"}
    auth = {t for t in titles if "auth" in t.lower() and t not in ours}
    found = findings(fuzz_run, titles - ours - auth)
    assert not found, "\n".join(found)


def test_authentication_is_not_ignored(fuzz_run: FuzzRun) -> None:
    titles = {f.check for f in fuzz_run.stats.findings.values()}
    auth = {t for t in titles if "auth" in t.lower() and t != "object_level_authorization"}
    found = findings(fuzz_run, auth)
    assert not found, "\n".join(found)
    probed = {label for label, n in fuzz_run.stats.examples.items() if n}
    assert fuzz_run.stats.sent["no key"] >= AUTH_PROBED_EXAMPLES * (len(probed) - len(PUBLIC_PATHS))


def test_bob_never_sees_alices_threads_runs_or_tasks(fuzz_run: FuzzRun) -> None:
    found = findings(fuzz_run, {"object_level_authorization"})
    assert not found, "\n".join(found)
    assert fuzz_run.stats.sent["alice's ids"] >= 100
    # ...and nothing bob sent changed or removed alice's data.
    assert fuzz_run.alice_after == fuzz_run.alice_before
    assert set(fuzz_run.alice_still_sees.values()) == {200}
