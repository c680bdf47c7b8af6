"""Clients that hang up: with on_disconnect=cancel their runs stop, and nobody else pays for it."""

import asyncio
from typing import Any

import httpx
import pytest
from httpx_sse import EventSource, ServerSentEvent

from tests.integration.conftest import serve

pytestmark = pytest.mark.integration

LONG = "thanks, that's all for now"  # a 69-word answer: 1.4 s at 20 ms per word


@pytest.fixture
def paced_server(tmp_path):
    server = serve(tmp_path / "data", env={"TASKAGENT_OFFLINE_TOKEN_DELAY_MS": "20"})
    yield server
    server.stop()


def _token(sse: ServerSentEvent) -> bool:
    data: Any = sse.json()
    return isinstance(data, list) and bool(data[0].get("content"))


async def hang_up_after_tokens(url: str, tokens: int) -> str:
    """Stream a long answer with on_disconnect=cancel, close after `tokens`; return the run."""
    async with httpx.AsyncClient(timeout=30) as client:
        thread = (await client.post(f"{url}/threads", json={})).json()["thread_id"]
        body = {
            "assistant_id": "agent",
            "input": {"messages": [{"role": "user", "content": LONG}]},
            "stream_mode": ["messages-tuple"],
            "on_disconnect": "cancel",
        }
        seen = 0
        async with client.stream("POST", f"{url}/threads/{thread}/runs/stream", json=body) as resp:
            run_path = resp.headers["content-location"]
            async for sse in EventSource(resp).aiter_sse():
                if sse.event == "messages" and '"AIMessageChunk"' in sse.data and _token(sse):
                    seen += 1
                    if seen == tokens:
                        break
    return run_path


async def test_cancelled_streams_stop_their_runs_and_leave_the_model_usable(paced_server):
    url = paced_server.url
    runs = await asyncio.gather(*(hang_up_after_tokens(url, 3) for _ in range(5)))
    async with httpx.AsyncClient(timeout=30) as client:
        for run_path in runs:
            await client.get(f"{url}{run_path}/join")
            assert (await client.get(f"{url}{run_path}")).json()["status"] == "interrupted"
        # Five hang-ups are not five model failures: the next user still gets a real answer.
        thread = (await client.post(f"{url}/threads", json={})).json()["thread_id"]
        body = {
            "assistant_id": "agent",
            "input": {"messages": [{"role": "user", "content": "list my tasks"}]},
        }
        state = (await client.post(f"{url}/threads/{thread}/runs/wait", json=body)).json()
    answer = state["messages"][-1]["content"]
    assert "no model is able to answer" not in answer
    assert state.get("executed_calls"), answer
