"""Thread-stream events: which a connection receives, and their streamed text redacted."""

from typing import Any

from graph.redaction import Redactor
from server.runs.event_redaction import EventRedactor
from server.runs.thread_stream import StreamFilter, supported_channel
from tests.unit.test_redaction import LEAKY, PROMPT, SECRETS


def event(method: str, data: Any = None, namespace: list[str] | None = None) -> dict[str, Any]:
    return {"method": method, "params": {"namespace": namespace or [], "data": data or {}}}


def test_channels_and_the_input_channel_name():
    only = StreamFilter(channels=frozenset({"input", "lifecycle"}))
    assert only.matches(event("input.requested", {"interrupt_id": "i"}))
    assert only.matches(event("lifecycle", {"event": "running"}))
    assert not only.matches(event("values", {"messages": []}))


def test_custom_events_by_name():
    named = StreamFilter(channels=frozenset({"custom:progress"}))
    assert named.matches(event("custom", {"name": "progress", "payload": 1}))
    assert not named.matches(event("custom", {"name": "other", "payload": 1}))
    assert not named.matches(event("custom", {"payload": 1}))
    assert StreamFilter(channels=frozenset({"custom"})).matches(event("custom", {"payload": 1}))


def test_namespace_prefixes_and_depth():
    scoped = StreamFilter(channels=frozenset({"values"}), namespaces=(("agent",),), depth=1)
    assert scoped.matches(event("values", namespace=["agent"]))
    assert scoped.matches(event("values", namespace=["agent", "tools"]))
    assert not scoped.matches(event("values", namespace=["agent", "tools", "deep"]))
    assert not scoped.matches(event("values", namespace=[]))


def test_supported_channels():
    assert all(map(supported_channel, ["values", "checkpoints", "tasks", "custom:x"]))
    assert not any(map(supported_channel, ["debug", "custom:", "", 3, None]))


def delta(text: str, node: str = "model_call") -> dict[str, Any]:
    body = {
        "event": "content-block-delta",
        "index": 0,
        "delta": {"type": "text-delta", "text": text},
    }
    return {"namespace": [], "timestamp": 1, "data": body, "node": node}


def test_text_deltas_split_anywhere_never_show_a_secret_and_lose_nothing():
    redactor = Redactor(SECRETS, PROMPT)
    for size in (1, 3, 7):
        events = EventRedactor(redactor)
        out = []
        for i in range(0, len(LEAKY), size):
            out += events.events("messages", delta(LEAKY[i : i + size]))
        finish = {"namespace": [], "timestamp": 2, "data": {"event": "content-block-finish"}}
        out += events.events("messages", finish)
        texts = [
            d["data"]["delta"]["text"]
            for _, d in out
            if d["data"]["event"] != "content-block-finish"
        ]
        assert "".join(texts) == redactor.text(LEAKY)
        assert out[-1][1]["data"]["event"] == "content-block-finish"
        assert all(s not in repr(out) for s in SECRETS)


def test_each_node_streams_its_own_text_and_the_run_end_releases_the_rest():
    redactor = Redactor(SECRETS, PROMPT)
    events = EventRedactor(redactor)
    out = events.events("messages", delta(f"first {SECRETS[1][:5]}", node="a"))
    out += events.events("messages", delta(f"{SECRETS[1][5:]} done", node="a"))
    out += events.events("messages", delta("other words", node="b"))
    out += events.flush()
    by_node: dict[str, str] = {}
    for _, params in out:
        by_node[params["node"]] = by_node.get(params["node"], "") + params["data"]["delta"]["text"]
    assert by_node == {"a": redactor.text(f"first {SECRETS[1]} done"), "b": "other words"}
