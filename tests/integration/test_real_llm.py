"""Smoke test against a real OpenAI-compatible model server (opt-in).

Run with e.g. a llama.cpp / LiteLLM / vLLM server on loopback::

    TEST_REAL_LLM_BASE_URL=http://127.0.0.1:8080/v1 TEST_REAL_LLM_MODEL=local \
        uv run pytest -m real_llm tests/integration/test_real_llm.py
"""

from __future__ import annotations

import os

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from graph.settings import Settings
from models.providers import build_openai_model
from models.toolcalls import normalize_tool_calls
from tools.schemas import TOOL_ARGS, tool_definition

BASE_URL = os.environ.get("TEST_REAL_LLM_BASE_URL")
MODEL = os.environ.get("TEST_REAL_LLM_MODEL", "local")

pytestmark = [
    pytest.mark.real_llm,
    pytest.mark.integration,
    pytest.mark.skipif(not BASE_URL, reason="set TEST_REAL_LLM_BASE_URL to run"),
]


def real_model() -> BaseChatModel:
    settings = Settings(
        _env_file=None,
        openai_base_url=BASE_URL,
        openai_api_key=os.environ.get("TEST_REAL_LLM_API_KEY") or None,
        openai_model=MODEL,
        model_timeout_s=float(os.environ.get("TEST_REAL_LLM_TIMEOUT_S", "120")),
    )
    return build_openai_model(settings)


async def test_plain_reply_is_not_empty() -> None:
    reply = await real_model().ainvoke([HumanMessage("Say hello in one short sentence.")])
    assert isinstance(reply, AIMessage)
    assert isinstance(reply.content, str) and reply.content.strip()


async def test_create_task_tool_call() -> None:
    model = real_model().bind_tools([tool_definition(name) for name in TOOL_ARGS])
    reply = await model.ainvoke(
        [
            SystemMessage(
                "You manage the user's tasks. Use the tools to act; never just describe it."
            ),
            HumanMessage("Create a task called Buy milk"),
        ]
    )
    assert isinstance(reply, AIMessage)
    fixed = normalize_tool_calls(reply, TOOL_ARGS)
    creates = [call for call in fixed.tool_calls if call["name"] == "create_task"]
    assert creates, f"no create_task call in {fixed!r}"
    args = TOOL_ARGS["create_task"].model_validate(creates[0]["args"])
    assert "milk" in args.model_dump()["title"].lower()
