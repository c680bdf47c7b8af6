"""The model output limit against the installed LangChain: a stream is stopped, not assembled."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk

from models.bounded_openai import BoundedChatOpenAI
from models.output_limit import ModelOutputTooLarge, OutputLimit, reply_chars


def test_a_streamed_reply_is_stopped_once_it_passes_the_limit() -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage(content="word " * 2_000)]))
    limit = OutputLimit(1_000)

    async def stream() -> None:
        async for _ in model.astream("hi", {"callbacks": [limit]}):
            pass

    with pytest.raises(ModelOutputTooLarge) as caught:
        asyncio.run(stream())
    assert 1_000 < caught.value.chars < 1_100  # stopped at the limit, not at the end (10,000)


def test_a_reply_within_the_limit_streams_whole() -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage(content="word " * 100)]))
    limit = OutputLimit(1_000)

    async def stream() -> str:
        return "".join(
            [str(chunk.content) async for chunk in model.astream("hi", {"callbacks": [limit]})]
        )

    assert asyncio.run(stream()) == "word " * 100
    assert limit.chars == 500


def test_reply_chars_counts_text_and_tool_call_arguments() -> None:
    call = {"name": "create_task", "args": {"title": "x" * 100}, "id": "c1", "type": "tool_call"}
    message = AIMessage(content="abc", tool_calls=[call])
    assert reply_chars(message) == 3 + len('{"title": ""}') + 100


def test_one_oversized_stream_chunk_is_refused_before_it_is_parsed() -> None:
    model = BoundedChatOpenAI(
        api_key="not-needed",
        base_url="http://127.0.0.1:9/v1",
        max_output_chars=1_000,
    )
    delta: dict[str, Any] = {
        "tool_calls": [{"index": 0, "function": {"arguments": '{"title": 1 ' + "x" * 5_000}}]
    }
    chunk = {"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    with pytest.raises(ModelOutputTooLarge):
        model._convert_chunk_to_generation_chunk(chunk, AIMessageChunk, None)
    delta["tool_calls"][0]["function"]["arguments"] = '{"title": "ok"}'
    assert model._convert_chunk_to_generation_chunk(chunk, AIMessageChunk, None) is not None
