"""Over HTTP, zero pacing: W1 time to first event/token and W4 streamed tokens per second.

Both servers are driven by the stock ``langgraph_sdk`` with the same calls: create a thread,
then ``runs.stream(thread, "agent", stream_mode=["updates", "messages-tuple"])``, the two
servers interleaved (A, B, B, A, ...) so both see the same machine load.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.machine import cpu_seconds
from bench.servers import Server
from bench.streams import GRAPH_ID, Stream, client_for, new_thread, stream_turn

W1_MESSAGE = "Create a high-priority task for the quarterly review due next Friday"
W4_SEED = "add a task to water plant {n}"
W4_MESSAGE = "list my tasks"
LIMIT_S = 30.0


def rotations(servers: Sequence[Server], rounds: int) -> Iterator[tuple[int, Server]]:
    """(round, server) pairs, A B, B A, A B, ... so neither always goes first."""
    for number in range(rounds):
        shift = number % len(servers)
        for server in [*servers[shift:], *servers[:shift]]:
            yield number, server


@dataclass
class FirstEvents:
    """W1 over HTTP: the streams of each server, warm-ups dropped."""

    streams: dict[str, list[Stream]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


async def first_event(servers: Sequence[Server], reps: int, warmups: int) -> FirstEvents:
    """W1: one turn on a fresh thread per repetition, servers interleaved."""
    result = FirstEvents({server.key: [] for server in servers})
    clients = {server.key: client_for(server.url) for server in servers}
    try:
        for number, server in rotations(servers, warmups + reps):
            client = clients[server.key]
            thread_id = await new_thread(client)
            stream = await stream_turn(client, thread_id, W1_MESSAGE, LIMIT_S)
            if not stream.ok:
                result.failures.append(f"W1 {server.label}: {stream.error}")
            if number >= warmups:
                result.streams[server.key].append(stream)
    finally:
        for client in clients.values():
            await client.aclose()
    return result


@dataclass
class TokenRates:
    """W4: single-stream rates per server and the aggregate run on ours."""

    single: dict[str, list[Stream]] = field(default_factory=dict)
    seed_s: dict[str, float] = field(default_factory=dict)
    aggregate_streams: list[Stream] = field(default_factory=list)
    aggregate_wall_s: float = 0.0
    aggregate_cpu_s: float = 0.0
    concurrent: int = 0
    failures: list[str] = field(default_factory=list)

    def rates(self, key: str) -> list[float]:
        """Tokens/s of each ok single stream of server `key`, first token to last."""
        return [rate(s) for s in self.single.get(key, []) if s.ok and rate(s) > 0]

    @property
    def aggregate_tokens(self) -> int:
        """Tokens delivered by the concurrent streams."""
        return sum(s.tokens for s in self.aggregate_streams if s.ok)


def rate(stream: Stream) -> float:
    """Tokens per second of one stream from first token to last (0 when undefined)."""
    if stream.first_token is None or stream.last_token is None:
        return 0.0
    span = stream.last_token - stream.first_token
    return stream.tokens / span if span > 0 else 0.0


async def seed_tasks(server: Server, count: int, failures: list[str]) -> float:
    """Create `count` tasks with sequential ``runs.wait`` calls on one thread; return seconds."""
    started = time.perf_counter()
    async with client_for(server.url) as client:
        thread_id = await new_thread(client)
        for n in range(1, count + 1):
            payload: dict[str, Any] = {
                "messages": [{"role": "user", "content": W4_SEED.format(n=n)}]
            }
            try:
                state: Any = await asyncio.wait_for(
                    client.runs.wait(thread_id, GRAPH_ID, input=payload), LIMIT_S
                )
                if not (isinstance(state, dict) and state.get("executed_calls")):
                    failures.append(f"W4 seeding {server.label}: no tool ran: {str(state)[:200]}")
            except Exception as exc:  # noqa: BLE001 - counted and reported
                failures.append(f"W4 seeding {server.label}: {type(exc).__name__}: {exc}"[:300])
    return time.perf_counter() - started


async def token_rate(
    servers: Sequence[Server], tasks: int, reps: int, concurrent: int
) -> TokenRates:
    """W4: seed tasks, stream the long list answer alone (interleaved), then many at once."""
    result = TokenRates(single={server.key: [] for server in servers}, concurrent=concurrent)
    seeds = await asyncio.gather(*(seed_tasks(s, tasks, result.failures) for s in servers))
    result.seed_s = {server.key: seconds for server, seconds in zip(servers, seeds, strict=True)}
    clients = {server.key: client_for(server.url) for server in servers}
    try:
        for _, server in rotations(servers, reps):
            client = clients[server.key]
            stream = await stream_turn(client, await new_thread(client), W4_MESSAGE, LIMIT_S)
            if not stream.ok:
                result.failures.append(f"W4 {server.label}: {stream.error}")
            result.single[server.key].append(stream)
    finally:
        for client in clients.values():
            await client.aclose()
    await aggregate(servers[0], concurrent, result)
    return result


async def aggregate(server: Server, concurrent: int, result: TokenRates) -> None:
    """`concurrent` clients stream the long answer at once; tokens per wall and CPU second."""
    clients = [client_for(server.url) for _ in range(concurrent)]
    try:
        threads = await asyncio.gather(*(new_thread(c) for c in clients))
        cpu = cpu_seconds(server.pid)
        started = time.perf_counter()
        result.aggregate_streams = list(
            await asyncio.gather(
                *(
                    stream_turn(c, t, W4_MESSAGE, LIMIT_S * 4)
                    for c, t in zip(clients, threads, strict=True)
                )
            )
        )
        result.aggregate_wall_s = time.perf_counter() - started
        result.aggregate_cpu_s = cpu_seconds(server.pid) - cpu
    finally:
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)
    for stream in result.aggregate_streams:
        if not stream.ok:
            result.failures.append(f"W4 aggregate {server.label}: {stream.error}")
