"""The offline engine as a LangChain chat model: tool binding, token usage and streaming.

What to say is decided by `models.offline.planner.plan_reply`; this module only turns that
reply into messages and chunks, paced like a hosted model when asked to.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import date
from typing import Any
from uuid import uuid4

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolCall, ToolCallChunk
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from models.offline.planner import ENGINE_NAME, plan_reply
from tools.schemas import TOOL_ARGS

__all__ = ["ENGINE_NAME", "OfflineChatModel"]

_TOKEN = re.compile(r"\s*\S+|\s+")
_ARG_MODELS = {model: name for name, model in TOOL_ARGS.items()}


def _tool_name(tool: Any) -> str:
    """Name of a tool given as an OpenAI-style dict, a BaseTool, a pydantic class or a function."""
    if isinstance(tool, dict):
        function = tool.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return str(function["name"])
        if isinstance(tool.get("name"), str):
            return str(tool["name"])
    if isinstance(tool, BaseTool):
        return tool.name
    if isinstance(tool, type) and tool in _ARG_MODELS:
        return _ARG_MODELS[tool]
    return str(convert_to_openai_tool(tool)["function"]["name"])


def _words(text: str) -> int:
    return len(text.split())


class OfflineChatModel(BaseChatModel):
    """Deterministic rule-based chat model used when no real LLM is configured.

    Without `bind_tools` every task tool is allowed; after binding, only the bound names.
    """

    model_name: str = ENGINE_NAME
    today: date | None = None
    allowed_tools: tuple[str, ...] | None = None
    token_delay_s: float = 0.0
    """Pause before each streamed chunk, to behave like a hosted model (demos, benchmarks)."""
    first_token_delay_s: float = 0.0
    """Pause before the first chunk of a reply instead of `token_delay_s` (time to first token)."""

    @property
    def _llm_type(self) -> str:
        return ENGINE_NAME

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "allowed_tools": self.allowed_tools}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Return a copy that may only call the given tools (tool_choice is ignored)."""
        names = tuple(dict.fromkeys(_tool_name(tool) for tool in tools))
        return self.model_copy(update={"allowed_tools": names})

    def _allowed(self, kwargs: dict[str, Any]) -> frozenset[str]:
        if kwargs.get("tools") is not None:
            return frozenset(_tool_name(tool) for tool in kwargs["tools"])
        if self.allowed_tools is None:
            return frozenset(TOOL_ARGS)
        return frozenset(self.allowed_tools)

    def _decide(
        self, messages: list[BaseMessage], kwargs: dict[str, Any]
    ) -> tuple[str, list[ToolCall], UsageMetadata]:
        reply = plan_reply(messages, self.today or date.today(), self._allowed(kwargs))
        calls = [
            ToolCall(name=name, args=args, id="call_" + uuid4().hex[:24], type="tool_call")
            for name, args in reply.tool_calls
        ]
        input_tokens = sum(_words(m.text) for m in messages)
        output_tokens = _words(reply.text) + sum(_words(json.dumps(c["args"])) + 1 for c in calls)
        usage = UsageMetadata(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
        )
        return reply.text, calls, usage

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text, calls, usage = self._decide(messages, kwargs)
        message = AIMessage(
            content=text,
            tool_calls=calls,
            response_metadata={"model_name": self.model_name},
            usage_metadata=usage,
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        result = self._generate(messages, stop=stop, **kwargs)
        pause = sum(self._pause(i) for i in range(len(self._chunks(messages, kwargs))))
        if pause:
            await asyncio.sleep(pause)
        return result

    def _pause(self, index: int) -> float:
        """Seconds to wait before chunk `index` of a reply."""
        if index == 0 and self.first_token_delay_s:
            return self.first_token_delay_s
        return self.token_delay_s

    def _chunks(
        self, messages: list[BaseMessage], kwargs: dict[str, Any]
    ) -> list[ChatGenerationChunk]:
        """The reply as stream chunks: word by word for text, one chunk for tool calls."""
        text, calls, usage = self._decide(messages, kwargs)
        final: dict[str, Any] = {
            "response_metadata": {"model_name": self.model_name},
            "usage_metadata": usage,
            "chunk_position": "last",
        }
        if calls:
            tool_chunks = [
                ToolCallChunk(
                    name=c["name"],
                    args=json.dumps(c["args"]),
                    id=c["id"],
                    index=i,
                    type="tool_call_chunk",
                )
                for i, c in enumerate(calls)
            ]
            return [
                ChatGenerationChunk(
                    message=AIMessageChunk(content=text, tool_call_chunks=tool_chunks, **final)
                )
            ]
        tokens = _TOKEN.findall(text) or [""]
        return [
            ChatGenerationChunk(
                message=AIMessageChunk(content=token, **(final if i == len(tokens) - 1 else {}))
            )
            for i, token in enumerate(tokens)
        ]

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages, kwargs):
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.message.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        loop = asyncio.get_running_loop()
        due = loop.time()
        for index, chunk in enumerate(self._chunks(messages, kwargs)):
            pause = self._pause(index)
            if pause:
                # Paced against a schedule, like a remote model whose tokens arrive while the
                # caller is still busy with the last one: handling time does not add up.
                due += pause
                await asyncio.sleep(max(0.0, due - loop.time()))
            if run_manager is not None:
                await run_manager.on_llm_new_token(chunk.message.text, chunk=chunk)
            yield chunk
