"""Fake Ollama and OpenAI-compatible HTTP servers on 127.0.0.1 for tests.

Real sockets, real HTTP/1.1 (keep-alive, chunked streaming), so the real `ChatOllama`
and `ChatOpenAI` clients are exercised end to end. Each server runs in a background
thread (`http.server.ThreadingHTTPServer`) on a random free port.

Usage::

    with FakeOllamaServer() as server:              # or FakeOpenAIServer()
        server.script(text("hi"), status(500), tool_call("create_task", {"title": "x"}))
        ...  # point a client at server.url (Ollama) / server.base_url (OpenAI, ".../v1")
        assert len(server.chat_requests) == 3

Behaviours (one is consumed per chat request, in order; `server.default` — `text("ok")`
unless changed — answers when the queue is empty):

* `text(content)`                   — an assistant reply.
* `tool_call(name, args)`           — one structured tool call (`tool_calls(...)` for more).
* `tool_call_raw(name, "<bad>")`    — a tool call whose arguments string is not valid JSON.
  OpenAI: sent as `function.arguments` verbatim. Ollama parses tool calls server-side and
  its API only carries argument *objects*, so — like real Ollama when the model's call
  does not parse — it comes back as content text `{"name": ..., "arguments": <bad>}`.
* `json_text(obj_or_str)`           — a tool call written as content text (small models).
* `status(code, retry_after=None)`  — an HTTP error in the provider's error format.
* `hang(seconds)`                   — read the request, answer nothing for `seconds` (or
  until the server stops), then drop the connection.
* `cut_mid_stream(text)`            — start answering, then drop the connection mid-body.

`max_prompt_chars=N` makes the server answer 400 (without consuming a behaviour) to a chat
request whose `messages` JSON is longer than N, as a provider refuses an oversized prompt.
`FakeOpenAIServer.usage` (a dict) replaces the token usage it reports.

`refused_url()` / `refused_endpoint()` give a URL where nothing listens.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import pytest

# ----------------------------------------------------------------------------- behaviours


@dataclass(frozen=True)
class Reply:
    """A normal answer: content text and/or tool calls (args dict, or raw string)."""

    content: str = ""
    calls: tuple[tuple[str, dict[str, Any] | str], ...] = ()


@dataclass(frozen=True)
class Status:
    """An HTTP error status."""

    code: int
    retry_after: float | str | None = None
    message: str = ""


@dataclass(frozen=True)
class Hang:
    """Accept the request but never answer (within `seconds`)."""

    seconds: float


@dataclass(frozen=True)
class CutMidStream:
    """Send part of a response, then drop the connection."""

    content: str = "Let me think about th"


Behaviour = Reply | Status | Hang | CutMidStream
ChatBehaviour = Reply | CutMidStream


def text(content: str) -> Reply:
    return Reply(content=content)


def tool_call(name: str, args: dict[str, Any] | None = None) -> Reply:
    return Reply(calls=((name, dict(args or {})),))


def tool_calls(*calls: tuple[str, dict[str, Any]], content: str = "") -> Reply:
    return Reply(content=content, calls=tuple((n, dict(a)) for n, a in calls))


def tool_call_raw(name: str, raw_arguments: str) -> Reply:
    return Reply(calls=((name, raw_arguments),))


def json_text(obj: Any) -> Reply:
    return Reply(content=obj if isinstance(obj, str) else json.dumps(obj))


def status(code: int, retry_after: float | str | None = None, message: str = "") -> Status:
    return Status(code=code, retry_after=retry_after, message=message)


def hang(seconds: float) -> Hang:
    return Hang(seconds=seconds)


def cut_mid_stream(content: str = "Let me think about th") -> CutMidStream:
    return CutMidStream(content=content)


# ----------------------------------------------------------------------------- recording


@dataclass
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any = None  # parsed JSON, or None
    behaviour: Behaviour | None = None  # what the fake answered a chat request with
    received_at: float = field(default_factory=time.monotonic)

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The `tools` the client sent (empty if none)."""
        if isinstance(self.body, dict):
            return list(self.body.get("tools") or [])
        return []

    @property
    def tool_names(self) -> list[str]:
        """Names of the tools the client offered."""
        return [t.get("function", {}).get("name", "") for t in self.tools]

    @property
    def stream(self) -> bool:
        """Whether the client asked for a streamed answer."""
        return bool(isinstance(self.body, dict) and self.body.get("stream"))


# ------------------------------------------------------------------------------- servers


def _approx_tokens(value: Any) -> int:
    return max(1, len(json.dumps(value, default=str)) // 4)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def _dispatch(self) -> None:
        body = self._read_body() if self.command in {"POST", "PUT", "PATCH"} else None
        request = RecordedRequest(
            method=self.command,
            path=self.path.split("?", 1)[0],
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        self.server.fake._record(request)
        self.server.fake._handle(self, request)

    do_GET = _dispatch
    do_POST = _dispatch
    do_HEAD = _dispatch

    # -- response helpers
    def send_json(self, code: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def start_chunked(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.flush()

    def write_chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    def end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def drop_connection(self) -> None:
        """Close the socket abruptly, leaving the response incomplete."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, fake: _FakeLLMServer) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)


class _FakeLLMServer:
    """Shared machinery: lifecycle, scripting, recording. Subclasses speak a protocol."""

    chat_path = ""
    model_name = "fake-model"

    def __init__(
        self,
        *,
        default: Behaviour | None = None,
        chunk_size: int = 4,
        max_prompt_chars: int | None = None,
        chunk_delay_s: float = 0.0,
    ) -> None:
        self.default: Behaviour = default or text("ok")
        self.chunk_size = chunk_size
        # A slow model: the pause before each streamed piece after the first.
        self.chunk_delay_s = chunk_delay_s
        self.max_prompt_chars = max_prompt_chars
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> Self:
        self._server = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes hanging handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Root URL, e.g. http://127.0.0.1:54321."""
        return f"http://127.0.0.1:{self.port}"

    # -- scripting
    def script(self, *behaviours: Behaviour) -> Self:
        """Queue behaviours, one per upcoming chat request."""
        with self._lock:
            self._queue.extend(behaviours)
        return self

    def reset(self) -> None:
        """Forget queued behaviours and recorded requests."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()

    @property
    def pending(self) -> int:
        """Behaviours not consumed yet."""
        with self._lock:
            return len(self._queue)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """Recorded requests to the chat endpoint."""
        with self._lock:
            return [r for r in self.requests if r.path == self.chat_path]

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next(self) -> Behaviour:
        with self._lock:
            return self._queue.popleft() if self._queue else self.default

    # -- protocol
    def _handle(self, handler: _Handler, request: RecordedRequest) -> None:
        if request.path == self.chat_path and request.method == "POST":
            body = request.body if isinstance(request.body, dict) else {}
            prompt_chars = len(json.dumps(body.get("messages", [])))
            if self.max_prompt_chars is not None and prompt_chars > self.max_prompt_chars:
                too_long = f"prompt of {prompt_chars} characters; this model takes at most"
                request.behaviour = status(400, message=f"{too_long} {self.max_prompt_chars}")
                self._error(handler, request.behaviour)
                return
            behaviour = self._next()
            request.behaviour = behaviour
            if isinstance(behaviour, Hang):
                self._stopping.wait(behaviour.seconds)
                handler.drop_connection()
            elif isinstance(behaviour, Status):
                self._error(handler, behaviour)
            else:
                self._chat(handler, body, behaviour)
            return
        self._other(handler, request)

    def _pieces(self, content: str) -> Iterator[str]:
        size = max(1, self.chunk_size)
        for start in range(0, len(content), size):
            if start and self.chunk_delay_s:
                self._stopping.wait(self.chunk_delay_s)
            yield content[start : start + size]

    def _error(self, handler: _Handler, behaviour: Status) -> None:
        raise NotImplementedError

    def _chat(
        self, handler: _Handler, body: dict[str, Any], behaviour: Reply | CutMidStream
    ) -> None:
        raise NotImplementedError

    def _other(self, handler: _Handler, request: RecordedRequest) -> None:
        raise NotImplementedError


def _retry_after_headers(behaviour: Status) -> dict[str, str]:
    if behaviour.retry_after is None:
        return {}
    value = behaviour.retry_after
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return {"Retry-After": str(value)}


class FakeOllamaServer(_FakeLLMServer):
    """Speaks Ollama's `/api/chat` (NDJSON stream or JSON), `/api/tags`, `/api/version`."""

    chat_path = "/api/chat"
    model_name = "llama3.2"
    version = "0.12.0"

    def _now(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())

    def _error(self, handler: _Handler, behaviour: Status) -> None:
        message = behaviour.message or f"fake ollama error {behaviour.code}"
        handler.send_json(behaviour.code, {"error": message}, _retry_after_headers(behaviour))

    def _message(self, behaviour: Reply) -> tuple[str, list[dict[str, Any]]]:
        content = behaviour.content
        calls: list[dict[str, Any]] = []
        for name, args in behaviour.calls:
            if isinstance(args, str):  # unparseable call: real Ollama leaves it as text
                content += f'{{"name": "{name}", "arguments": {args}}}'
            else:
                calls.append({"function": {"name": name, "arguments": args}})
        return content, calls

    def _final(self, model: str, body: dict[str, Any], content: str) -> dict[str, Any]:
        return {
            "model": model,
            "created_at": self._now(),
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "total_duration": 1_000_000,
            "load_duration": 1000,
            "prompt_eval_count": _approx_tokens(body.get("messages", [])),
            "prompt_eval_duration": 1000,
            "eval_count": max(1, len(content) // 4),
            "eval_duration": 1000,
        }

    def _chat(
        self, handler: _Handler, body: dict[str, Any], behaviour: Reply | CutMidStream
    ) -> None:
        model = str(body.get("model") or self.model_name)
        stream = body.get("stream", True) is not False  # Ollama streams unless told not to
        if isinstance(behaviour, CutMidStream):
            if stream:
                handler.start_chunked("application/x-ndjson")
                for piece in self._pieces(behaviour.content):
                    line = {
                        "model": model,
                        "created_at": self._now(),
                        "message": {"role": "assistant", "content": piece},
                        "done": False,
                    }
                    handler.write_chunk(json.dumps(line).encode() + b"\n")
            else:
                handler.send_response(200)
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", "4096")
                handler.end_headers()
                handler.wfile.write(b'{"model": "' + model.encode() + b'", "message": {"ro')
            handler.drop_connection()
            return
        content, calls = self._message(behaviour)
        final = self._final(model, body, content)
        if not stream:
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if calls:
                message["tool_calls"] = calls
            handler.send_json(200, {**final, "message": message})
            return
        handler.start_chunked("application/x-ndjson")
        for piece in self._pieces(content):
            line = {
                "model": model,
                "created_at": self._now(),
                "message": {"role": "assistant", "content": piece},
                "done": False,
            }
            handler.write_chunk(json.dumps(line).encode() + b"\n")
        if calls:
            line = {
                "model": model,
                "created_at": self._now(),
                "message": {"role": "assistant", "content": "", "tool_calls": calls},
                "done": False,
            }
            handler.write_chunk(json.dumps(line).encode() + b"\n")
        handler.write_chunk(json.dumps(final).encode() + b"\n")
        handler.end_chunked()

    def _other(self, handler: _Handler, request: RecordedRequest) -> None:
        details = {
            "parent_model": "",
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": "3.2B",
            "quantization_level": "Q4_K_M",
        }
        if request.path == "/api/version":
            handler.send_json(200, {"version": self.version})
        elif request.path == "/api/tags":
            name = f"{self.model_name}:latest"
            handler.send_json(
                200,
                {
                    "models": [
                        {
                            "name": name,
                            "model": name,
                            "modified_at": "2025-01-01T00:00:00Z",
                            "size": 2_019_393_189,
                            "digest": "a80c4f17acd5" + "0" * 52,
                            "details": details,
                        }
                    ]
                },
            )
        elif request.path == "/api/show":
            handler.send_json(
                200,
                {
                    "modelfile": "",
                    "parameters": "",
                    "template": "{{ .Prompt }}",
                    "details": details,
                    "model_info": {},
                    "capabilities": ["completion", "tools"],
                },
            )
        elif request.path == "/" and request.method in {"GET", "HEAD"}:
            data = b"Ollama is running"
            handler.send_response(200)
            handler.send_header("Content-Type", "text/plain")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            if request.method == "GET":
                handler.wfile.write(data)
        else:
            handler.send_json(404, {"error": f"unknown path {request.path}"})


class FakeOpenAIServer(_FakeLLMServer):
    """Speaks OpenAI's `/v1/chat/completions` (JSON or SSE) and `/v1/models`."""

    chat_path = "/v1/chat/completions"
    model_name = "gpt-4o-mini"
    usage: dict[str, Any] | None = None  # reported as is instead of the approximate count

    # Tool call ids as some providers make them, e.g. "{name}:{index}" ("create_task:0"),
    # the same in every reply; None: a fresh random id per call, as OpenAI does.
    call_id_format: str | None = None

    @property
    def base_url(self) -> str:
        """The `base_url` an OpenAI client wants, e.g. http://127.0.0.1:54321/v1."""
        return f"{self.url}/v1"

    def _error(self, handler: _Handler, behaviour: Status) -> None:
        kind = {
            400: "invalid_request_error",
            401: "authentication_error",
            403: "permission_error",
            404: "not_found_error",
            429: "rate_limit_exceeded",
        }.get(behaviour.code, "server_error")
        message = behaviour.message or f"fake openai error {behaviour.code}"
        payload = {"error": {"message": message, "type": kind, "param": None, "code": kind}}
        handler.send_json(behaviour.code, payload, _retry_after_headers(behaviour))

    @staticmethod
    def _arguments(args: dict[str, Any] | str) -> str:
        return args if isinstance(args, str) else json.dumps(args)

    def _usage(self, body: dict[str, Any], behaviour: Reply) -> dict[str, Any]:
        if self.usage is not None:
            return dict(self.usage)
        prompt = _approx_tokens(body.get("messages", []))
        completion = max(1, (len(behaviour.content) + len(json.dumps(behaviour.calls))) // 4)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _chat(
        self, handler: _Handler, body: dict[str, Any], behaviour: Reply | CutMidStream
    ) -> None:
        model = str(body.get("model") or self.model_name)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        stream = bool(body.get("stream"))

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }

        def sse(payload: Any) -> bytes:
            data = payload if isinstance(payload, str) else json.dumps(payload)
            return f"data: {data}\n\n".encode()

        if isinstance(behaviour, CutMidStream):
            if stream:
                handler.start_chunked("text/event-stream")
                handler.write_chunk(sse(chunk({"role": "assistant", "content": ""})))
                for piece in self._pieces(behaviour.content):
                    handler.write_chunk(sse(chunk({"content": piece})))
            else:
                handler.send_response(200)
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", "4096")
                handler.end_headers()
                handler.wfile.write(b'{"id": "' + completion_id.encode() + b'", "choi')
            handler.drop_connection()
            return

        calls: list[dict[str, Any]] = [
            {
                "id": self.call_id_format.format(name=name, index=index)
                if self.call_id_format
                else f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": name, "arguments": self._arguments(args)},
            }
            for index, (name, args) in enumerate(behaviour.calls)
        ]
        finish = "tool_calls" if calls else "stop"
        usage = self._usage(body, behaviour)
        if not stream:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": behaviour.content or (None if calls else ""),
                "refusal": None,
            }
            if calls:
                message["tool_calls"] = calls
            handler.send_json(
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "system_fingerprint": "fp_fake",
                    "choices": [
                        {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
                    ],
                    "usage": usage,
                },
            )
            return

        handler.start_chunked("text/event-stream")
        handler.write_chunk(sse(chunk({"role": "assistant", "content": "", "refusal": None})))
        for piece in self._pieces(behaviour.content):
            handler.write_chunk(sse(chunk({"content": piece})))
        for index, call in enumerate(calls):
            function = call["function"]
            head = {
                "index": index,
                "id": call["id"],
                "type": "function",
                "function": {"name": function["name"], "arguments": ""},
            }
            handler.write_chunk(sse(chunk({"tool_calls": [head]})))
            for piece in self._pieces(function["arguments"]):
                part = {"index": index, "function": {"arguments": piece}}
                handler.write_chunk(sse(chunk({"tool_calls": [part]})))
        handler.write_chunk(sse(chunk({}, finish)))
        options = body.get("stream_options") or {}
        if options.get("include_usage"):
            usage_chunk = {**chunk({}), "choices": [], "usage": usage}
            handler.write_chunk(sse(usage_chunk))
        handler.write_chunk(sse("[DONE]"))
        handler.end_chunked()

    def _other(self, handler: _Handler, request: RecordedRequest) -> None:
        if request.path in {"/v1/models", "/models"}:
            handler.send_json(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": self.model_name, "object": "model", "created": 0, "owned_by": "fake"}
                    ],
                },
            )
        else:
            payload = {
                "error": {
                    "message": f"unknown path {request.path}",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "not_found",
                }
            }
            handler.send_json(404, payload)


# ------------------------------------------------------------------------ refused ports


@contextlib.contextmanager
def refused_endpoint() -> Iterator[str]:
    """Yield a URL on 127.0.0.1 where connecting is refused.

    The port stays bound (but not listening) while the context is open, so nobody else
    can grab it: connecting gets an immediate RST / ECONNREFUSED.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def refused_url() -> str:
    """A URL on 127.0.0.1 where (almost certainly) nothing listens."""
    with refused_endpoint() as url:
        return url


# ------------------------------------------------------------------------------ fixtures
# Register with `pytest_plugins = ["tests.fakes.llm_servers"]` in the root conftest, or
# wrap the context managers in local fixtures.


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllamaServer]:
    with FakeOllamaServer() as server:
        yield server


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def refused() -> Iterator[str]:
    with refused_endpoint() as url:
        yield url
