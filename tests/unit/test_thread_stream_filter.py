"""Which events a thread-stream connection receives: channels, custom names, namespaces."""

from typing import Any

from server.runs.thread_stream import StreamFilter, supported_channel


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
