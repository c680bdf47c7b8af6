"""Each tier sends its context size, answer budget and temperature to the model server."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage

from graph.settings import Settings
from models.providers import build_ollama_model, build_openai_model, build_tiers
from tests.fakes.llm_servers import FakeOllamaServer, FakeOpenAIServer

pytestmark = pytest.mark.integration


async def test_ollama_receives_num_ctx_num_predict_and_temperature() -> None:
    with FakeOllamaServer() as server:
        settings = Settings(
            _env_file=None,
            ollama_base_url=server.url,
            ollama_context_tokens=4096,
            ollama_max_tokens=300,
            ollama_temperature=0.1,
        )
        await build_ollama_model(settings).ainvoke([HumanMessage("hi")])
        [request] = server.chat_requests
    options = request.body["options"]
    assert (options["num_ctx"], options["num_predict"], options["temperature"]) == (4096, 300, 0.1)
    [tier, _offline] = build_tiers(settings)
    assert (tier.context_tokens, tier.reserved_tokens) == (4096, 300)


async def test_openai_receives_max_tokens_and_temperature_by_default() -> None:
    with FakeOpenAIServer() as server:
        settings = Settings(_env_file=None, openai_base_url=server.base_url)
        await build_openai_model(settings).ainvoke([HumanMessage("hi")])
        [request] = server.chat_requests
    assert request.body["max_completion_tokens"] == 512
    assert request.body["temperature"] == 0.2
    [tier, offline] = build_tiers(settings)
    assert (tier.context_tokens, tier.reserved_tokens) == (128_000, 512)
    assert offline.context_tokens is None
