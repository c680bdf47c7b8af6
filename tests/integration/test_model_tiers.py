"""The real ChatOllama / ChatOpenAI clients, configured as `build_tiers` does, against fakes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from pydantic import SecretStr

from graph.settings import Settings
from models.providers import build_ollama_model, build_openai_model, build_tiers
from models.resilience import CircuitBreaker, CircuitOpenError, is_transient, retry_after_seconds
from models.toolcalls import INVALID_ARGUMENTS_KEY, normalize_tool_calls
from tests.fakes.llm_servers import (
    FakeOllamaServer,
    FakeOpenAIServer,
    cut_mid_stream,
    hang,
    json_text,
    refused_endpoint,
    status,
    text,
    tool_call,
    tool_call_raw,
    tool_calls,
)
from tools.schemas import TOOL_ARGS, CreateTaskArgs, tool_definition

pytestmark = pytest.mark.integration

TIMEOUT_S = 0.5
TOOLS = [tool_definition(name) for name in TOOL_ARGS]
MESSAGES = [HumanMessage("Create a task called Buy milk")]
_ENV = ("OLLAMA_BASE_URL", "OLLAMA_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL")


def make_settings(**values: Any) -> Settings:
    values.setdefault("model_timeout_s", TIMEOUT_S)
    return Settings(_env_file=None, **values)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def ollama_server() -> Iterator[FakeOllamaServer]:
    with FakeOllamaServer() as server:
        yield server


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


Server = FakeOllamaServer | FakeOpenAIServer


def model_for(server: Server) -> BaseChatModel:
    if isinstance(server, FakeOllamaServer):
        return build_ollama_model(make_settings(ollama_base_url=server.url))
    return build_openai_model(make_settings(openai_base_url=server.base_url))


@pytest.fixture(params=["ollama", "openai"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    fake: Server = FakeOllamaServer() if request.param == "ollama" else FakeOpenAIServer()
    with fake:
        yield fake


async def invoke(server: Server, *, tools: bool = True) -> AIMessage:
    model = model_for(server)
    runnable = model.bind_tools(TOOLS) if tools else model
    result = await runnable.ainvoke(MESSAGES)
    assert isinstance(result, AIMessage)
    return result


async def stream(server: Server, *, tools: bool = True) -> tuple[AIMessageChunk, int]:
    model = model_for(server)
    runnable = model.bind_tools(TOOLS) if tools else model
    total: AIMessageChunk | None = None
    count = 0
    async for chunk in runnable.astream(MESSAGES):
        assert isinstance(chunk, AIMessageChunk)
        total = chunk if total is None else total + chunk
        count += 1
    assert total is not None
    return total, count


async def failure(server: Server, *, streaming: bool = False) -> BaseException:
    with pytest.raises(Exception) as info:
        if streaming:
            await stream(server)
        else:
            await invoke(server)
    return info.value


# ----------------------------------------------------------------------------- happy path


async def test_text_reply(server: Server) -> None:
    server.script(text("Hello there, how can I help?"))
    reply = await invoke(server)
    assert reply.content == "Hello there, how can I help?"
    assert reply.tool_calls == []
    assert reply.usage_metadata is not None and reply.usage_metadata["total_tokens"] > 0
    [request] = server.chat_requests
    assert sorted(request.tool_names) == sorted(TOOL_ARGS)  # tools were offered
    assert request.body["model"] in {"llama3.2", "gpt-4o-mini"}


async def test_streaming_text(server: Server) -> None:
    server.script(text("Streaming works fine."))
    total, count = await stream(server)
    assert total.content == "Streaming works fine."
    assert count > 3  # really arrived in pieces
    assert total.usage_metadata is not None and total.usage_metadata["output_tokens"] > 0
    [request] = server.chat_requests
    assert request.stream
    if isinstance(server, FakeOpenAIServer):
        assert request.body["stream_options"] == {"include_usage": True}


async def test_tool_call_invoke(server: Server) -> None:
    server.script(tool_call("create_task", {"title": "Buy milk", "priority": "high"}))
    reply = await invoke(server)
    [call] = reply.tool_calls
    assert call["name"] == "create_task"
    assert call["args"] == {"title": "Buy milk", "priority": "high"}
    assert call["id"]
    CreateTaskArgs.model_validate(call["args"])


async def test_tool_calls_streamed(server: Server) -> None:
    server.script(
        tool_calls(("create_task", {"title": "Buy milk"}), ("list_tasks", {"status": "pending"}))
    )
    total, _ = await stream(server)
    assert [(c["name"], c["args"]) for c in total.tool_calls] == [
        ("create_task", {"title": "Buy milk"}),
        ("list_tasks", {"status": "pending"}),
    ]


async def test_default_behaviour_when_queue_empty(server: Server) -> None:
    server.default = text("default answer")
    assert (await invoke(server, tools=False)).content == "default answer"
    assert (await invoke(server, tools=False)).content == "default answer"
    assert len(server.chat_requests) == 2
    assert server.chat_requests[0].tools == []


# ---------------------------------------------------------------------------- failures


@pytest.mark.parametrize("provider", ["ollama", "openai"])
async def test_connection_refused_is_transient(provider: str) -> None:
    with refused_endpoint() as url:
        if provider == "ollama":
            model = build_ollama_model(make_settings(ollama_base_url=url))
        else:
            model = build_openai_model(make_settings(openai_base_url=f"{url}/v1"))
        started = time.monotonic()
        with pytest.raises(Exception) as info:
            await model.ainvoke(MESSAGES)
    assert is_transient(info.value), repr(info.value)
    assert time.monotonic() - started < 2  # refused fast, no client-side retries


async def test_hang_times_out_and_is_transient(server: Server) -> None:
    server.script(hang(10))
    started = time.monotonic()
    exc = await failure(server)
    elapsed = time.monotonic() - started
    assert is_transient(exc), repr(exc)
    assert TIMEOUT_S * 0.8 <= elapsed < TIMEOUT_S + 2
    assert len(server.chat_requests) == 1


async def test_server_error_is_transient_and_not_retried_by_client(server: Server) -> None:
    server.script(status(500))
    exc = await failure(server)
    assert is_transient(exc), repr(exc)
    assert retry_after_seconds(exc) is None
    assert len(server.chat_requests) == 1


async def test_503_with_retry_after(server: Server) -> None:
    server.script(status(503, retry_after=1))
    exc = await failure(server)
    assert is_transient(exc)
    assert retry_after_seconds(exc) == 1.0


async def test_rate_limit_with_retry_after(server: Server) -> None:
    server.script(status(429, retry_after=2))
    exc = await failure(server)
    assert is_transient(exc), repr(exc)
    assert retry_after_seconds(exc) == 2.0
    assert len(server.chat_requests) == 1


async def test_rate_limit_streaming(server: Server) -> None:
    server.script(status(429, retry_after=3))
    exc = await failure(server, streaming=True)
    assert is_transient(exc)
    assert retry_after_seconds(exc) == 3.0


@pytest.mark.parametrize("code", [400, 401, 404, 422])
async def test_client_errors_are_not_transient_and_sent_once(server: Server, code: int) -> None:
    server.script(status(code))
    exc = await failure(server)
    assert not is_transient(exc), repr(exc)
    assert len(server.chat_requests) == 1  # the client did not retry by itself


@pytest.mark.parametrize("streaming", [False, True])
async def test_cut_mid_stream_is_transient(server: Server, streaming: bool) -> None:
    server.script(cut_mid_stream())
    exc = await failure(server, streaming=streaming)
    assert is_transient(exc), repr(exc)


async def test_recovers_after_failures(server: Server) -> None:
    server.script(status(500), status(502), text("back"))
    for _ in range(2):
        assert is_transient(await failure(server))
    assert (await invoke(server)).content == "back"
    assert server.pending == 0


async def test_breaker_opens_on_real_failures(server: Server) -> None:
    server.script(status(500), status(500), text("never reached"))
    now = [0.0]
    breaker = CircuitBreaker(2, 30.0, name="fake", clock=lambda: now[0])
    for _ in range(2):
        breaker.check()
        exc = await failure(server)
        assert is_transient(exc)
        breaker.record_failure()
    with pytest.raises(CircuitOpenError):
        breaker.check()
    assert len(server.chat_requests) == 2  # refused fast, the server was not called
    now[0] += 30.0
    breaker.check()  # half-open trial
    assert (await invoke(server)).content == "never reached"
    breaker.record_success()
    assert breaker.state == "closed"


# ------------------------------------------------------------- messy tool calls, normalised


async def test_openai_malformed_arguments_repaired(openai_server: FakeOpenAIServer) -> None:
    openai_server.script(tool_call_raw("create_task", "{'title': 'Buy milk', 'priority': 'high',}"))
    reply = await invoke(openai_server)
    assert reply.tool_calls == [] and len(reply.invalid_tool_calls) == 1
    raw_id = reply.invalid_tool_calls[0]["id"]
    fixed = normalize_tool_calls(reply, TOOL_ARGS)
    [call] = fixed.tool_calls
    assert call["id"] == raw_id
    assert call["args"] == {"title": "Buy milk", "priority": "high"}
    assert fixed.invalid_tool_calls == []


async def test_openai_malformed_arguments_streamed_and_marked(
    openai_server: FakeOpenAIServer,
) -> None:
    openai_server.script(tool_call_raw("update_task", "task_id=TASK-1; title=<new>"))
    total, _ = await stream(openai_server)
    fixed = normalize_tool_calls(AIMessage(**total.model_dump(exclude={"type"})), TOOL_ARGS)
    [call] = fixed.tool_calls
    assert call["name"] == "update_task"
    assert call["args"] == {INVALID_ARGUMENTS_KEY: "task_id=TASK-1; title=<new>"}


async def test_ollama_unparsed_call_text_is_repaired(ollama_server: FakeOllamaServer) -> None:
    # Ollama cannot carry an argument *string*: an unparseable call arrives as content.
    ollama_server.script(tool_call_raw("create_task", "{'title': 'Buy milk',}"))
    reply = await invoke(ollama_server)
    assert reply.tool_calls == []
    fixed = normalize_tool_calls(reply, TOOL_ARGS)
    assert [(c["name"], c["args"]) for c in fixed.tool_calls] == [
        ("create_task", {"title": "Buy milk"})
    ]
    assert fixed.content == ""


@pytest.mark.parametrize("streaming", [False, True])
async def test_json_text_tool_call_from_ollama(
    ollama_server: FakeOllamaServer, streaming: bool
) -> None:
    ollama_server.script(
        json_text({"name": "create_task", "arguments": {"title": "Buy milk", "tags": ["home"]}})
    )
    if streaming:
        total, _ = await stream(ollama_server)
        reply = AIMessage(content=total.content, id=total.id)
    else:
        reply = await invoke(ollama_server)
    assert reply.tool_calls == []
    fixed = normalize_tool_calls(reply, TOOL_ARGS)
    [call] = fixed.tool_calls
    assert call["name"] == "create_task"
    assert call["args"] == {"title": "Buy milk", "tags": ["home"]}
    assert (call["id"] or "").startswith("call_")
    assert fixed.content == ""


async def test_fenced_json_text_tool_call(server: Server) -> None:
    server.script(
        json_text('Okay!\n```json\n{"name": "list_tasks", "arguments": {"overdue": true}}\n```')
    )
    fixed = normalize_tool_calls(await invoke(server), TOOL_ARGS)
    assert [(c["name"], c["args"]) for c in fixed.tool_calls] == [("list_tasks", {"overdue": True})]
    assert fixed.content == "Okay!"


async def test_json_text_for_unknown_tool_stays_text(server: Server) -> None:
    server.script(json_text({"name": "format_disk", "arguments": {}}))
    reply = await invoke(server)
    fixed = normalize_tool_calls(reply, TOOL_ARGS)
    assert fixed.tool_calls == []
    assert fixed.content == reply.content


# --------------------------------------------------------------------------- build_tiers


@pytest.fixture
def offline_available() -> None:
    pytest.importorskip("models.offline", reason="models/offline/ not written yet")


@pytest.mark.usefixtures("offline_available")
def test_build_tiers_offline_only_when_nothing_configured() -> None:
    tiers = build_tiers(make_settings())
    assert [t.name for t in tiers] == ["offline"]
    assert tiers[0].label == "offline-engine"
    from models.offline import OfflineChatModel

    assert isinstance(tiers[0].model, OfflineChatModel)
    assert isinstance(tiers[0].model, BaseChatModel)


@pytest.mark.usefixtures("offline_available")
def test_build_tiers_full_chain_in_order() -> None:
    from langchain_ollama import ChatOllama
    from langchain_openai import ChatOpenAI

    settings = make_settings(
        ollama_base_url="http://127.0.0.1:11434",
        ollama_model="qwen2.5:3b",
        openai_api_key="sk-test",
        openai_model="gpt-4o-mini",
        model_timeout_s=7.5,
        breaker_threshold=4,
        breaker_cooldown_s=12.0,
    )
    tiers = build_tiers(settings)
    assert [t.name for t in tiers] == ["ollama", "openai", "offline"]
    assert [t.label for t in tiers] == ["ollama:qwen2.5:3b", "openai:gpt-4o-mini", "offline-engine"]
    ollama_model, openai_model = tiers[0].model, tiers[1].model
    assert isinstance(ollama_model, ChatOllama)
    assert ollama_model.base_url == "http://127.0.0.1:11434"
    assert ollama_model.client_kwargs == {"timeout": 7.5}
    assert isinstance(openai_model, ChatOpenAI)
    assert openai_model.max_retries == 0
    timeout = openai_model.request_timeout
    assert isinstance(timeout, openai.Timeout)
    assert timeout.read == timeout.connect == 7.5
    assert openai_model.stream_usage is True
    assert isinstance(openai_model.openai_api_key, SecretStr)
    assert openai_model.openai_api_key.get_secret_value() == "sk-test"
    breakers = [t.breaker for t in tiers]
    assert len({id(b) for b in breakers}) == 3  # one breaker per tier
    assert all(b.threshold == 4 and b.cooldown_s == 12.0 for b in breakers)
    assert [b.name for b in breakers] == ["ollama", "openai", "offline"]


@pytest.mark.usefixtures("offline_available")
def test_build_tiers_openai_compatible_without_key() -> None:
    tiers = build_tiers(make_settings(openai_base_url="http://127.0.0.1:8080/v1"))
    assert [t.name for t in tiers] == ["openai", "offline"]


@pytest.mark.usefixtures("offline_available")
def test_build_tiers_ollama_only() -> None:
    tiers = build_tiers(make_settings(ollama_base_url="http://127.0.0.1:11434"))
    assert [t.name for t in tiers] == ["ollama", "offline"]


@pytest.mark.usefixtures("offline_available")
async def test_build_tiers_models_talk_to_the_fakes(
    ollama_server: FakeOllamaServer, openai_server: FakeOpenAIServer
) -> None:
    settings = make_settings(
        ollama_base_url=ollama_server.url, openai_base_url=openai_server.base_url
    )
    ollama_server.script(text("from ollama"))
    openai_server.script(text("from openai"))
    tiers = build_tiers(settings)
    replies = [await t.model.bind_tools(TOOLS).ainvoke(MESSAGES) for t in tiers[:2]]
    assert [r.content for r in replies] == ["from ollama", "from openai"]
