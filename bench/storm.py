"""W6: disconnect storms. Many clients drop their streams after a few tokens, per policy.

Each client opens ``POST /threads/{id}/runs/stream`` (``on_disconnect`` = continue or
cancel) for a long paced answer, reads until it has a few tokens, and closes its
connection. Then ``GET .../runs/{id}/join`` waits for the run to end and ``GET
.../runs/{id}`` reads its status: with ``continue`` every run must finish (success), with
``cancel`` every run must stop (interrupted) long before its answer would have ended. The
server's resident memory, open file descriptors, threads and established TCP connections
(psutil) are read before the first storm and after each one, once its runs have ended.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil
from httpx_sse import EventSource

from bench.servers import Server
from bench.streams import GRAPH_ID

MESSAGE = "list my tasks"
SEED = "add a task to restock shelf {n}"
LIMIT_S = 120.0


@dataclass
class Drop:
    """One dropped stream: how long its run went on after the drop and how it ended."""

    tokens_read: int = 0
    end_after_drop_s: float = float("nan")
    status: str = ""
    error: str = ""


@dataclass
class Snapshot:
    """Process-level figures of the server."""

    rss_mib: float
    fds: int
    threads: int
    connections: int


@dataclass
class Storm:
    """One storm: its policy, drops and the server figures after it settled."""

    policy: str
    drops: list[Drop] = field(default_factory=list)
    after: Snapshot | None = None
    wall_s: float = 0.0

    def statuses(self) -> dict[str, int]:
        """How many runs ended in each status."""
        counts: dict[str, int] = {}
        for drop in self.drops:
            key = drop.status or f"error: {drop.error[:60]}"
            counts[key] = counts.get(key, 0) + 1
        return counts


@dataclass
class StormResult:
    """All storms and the baseline figures."""

    clients: int
    after_tokens: int
    natural_s: float = 0.0
    baseline: Snapshot | None = None
    storms: list[Storm] = field(default_factory=list)


def snapshot(pid: int, port: int) -> Snapshot:
    """Resident memory, fds, threads and established connections on `port` of `pid`."""
    proc = psutil.Process(pid)
    connections = [
        c
        for c in proc.net_connections(kind="tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
    ]
    return Snapshot(
        rss_mib=proc.memory_info().rss / (1 << 20),
        fds=proc.num_fds(),
        threads=proc.num_threads(),
        connections=len(connections),
    )


def _is_token(data: str) -> bool:
    try:
        value: Any = json.loads(data)
    except json.JSONDecodeError:
        return False
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], dict)
        and value[0].get("type") in ("AIMessageChunk", "ai")
        and bool(value[0].get("content"))
    )


async def drop_one(
    url: str, thread_id: str, policy: str, after_tokens: int, monitor: httpx.AsyncClient
) -> Drop:
    """Stream, hang up after `after_tokens` tokens, then wait for the run's end and status."""
    drop = Drop()
    body = {
        "assistant_id": GRAPH_ID,
        "input": {"messages": [{"role": "user", "content": MESSAGE}]},
        "stream_mode": ["messages-tuple"],
        "on_disconnect": policy,
    }
    run_path = ""
    try:
        async with (
            httpx.AsyncClient(timeout=LIMIT_S) as client,
            client.stream("POST", f"{url}/threads/{thread_id}/runs/stream", json=body) as resp,
        ):
            run_path = resp.headers.get("content-location", "")
            async for sse in EventSource(resp).aiter_sse():
                if sse.event == "messages" and _is_token(sse.data):
                    drop.tokens_read += 1
                    if drop.tokens_read >= after_tokens:
                        break
        dropped = time.perf_counter()
        if not run_path:
            raise RuntimeError("no Content-Location on the stream response")
        await _get(monitor, f"{url}{run_path}/join")
        drop.end_after_drop_s = time.perf_counter() - dropped
        run = (await _get(monitor, f"{url}{run_path}")).json()
        drop.status = str(run.get("status"))
    except Exception as exc:  # noqa: BLE001 - a failed drop is a measurement
        drop.error = f"{type(exc).__name__}: {exc}"[:200]
    return drop


async def _get(client: httpx.AsyncClient, url: str) -> httpx.Response:
    """GET, once more if a pooled keep-alive connection was closed by the server meanwhile."""
    try:
        return await client.get(url, timeout=LIMIT_S)
    except (httpx.ReadError, httpx.RemoteProtocolError):
        return await client.get(url, timeout=LIMIT_S)


async def seed(url: str, count: int) -> None:
    """Create `count` tasks at once, one thread each, so the answer to MESSAGE is long."""
    async with httpx.AsyncClient(timeout=LIMIT_S) as client:

        async def one(n: int) -> None:
            thread = (await client.post(f"{url}/threads", json={})).json()
            body = {
                "assistant_id": GRAPH_ID,
                "input": {"messages": [{"role": "user", "content": SEED.format(n=n)}]},
            }
            await client.post(f"{url}/threads/{thread['thread_id']}/runs/wait", json=body)

        await asyncio.gather(*(one(n) for n in range(1, count + 1)))


async def natural_length(url: str) -> float:
    """Seconds one undisturbed stream of MESSAGE takes (what a dropped run would still need)."""
    async with httpx.AsyncClient(timeout=LIMIT_S) as client:
        thread = (await client.post(f"{url}/threads", json={})).json()
        body = {
            "assistant_id": GRAPH_ID,
            "input": {"messages": [{"role": "user", "content": MESSAGE}]},
            "stream_mode": ["messages-tuple"],
        }
        started = time.perf_counter()
        async with client.stream(
            "POST", f"{url}/threads/{thread['thread_id']}/runs/stream", json=body
        ) as resp:
            async for _ in resp.aiter_lines():
                pass
        return time.perf_counter() - started


async def storms(
    server: Server, clients: int, after_tokens: int, repeats: int, seed_tasks: int
) -> StormResult:
    """`repeats` storms per policy, alternating continue and cancel, with figures after each."""
    result = StormResult(clients=clients, after_tokens=after_tokens)
    await seed(server.url, seed_tasks)
    result.natural_s = await natural_length(server.url)
    await asyncio.sleep(1.0)
    result.baseline = snapshot(server.pid, server.port)
    # Continue storms first: a cancelled run must not leave anything behind that changes how
    # the next storm's runs go, and if it does, the cancel storms show it.
    for number, policy in enumerate(["continue"] * repeats + ["cancel"] * repeats):
        storm = Storm(policy)
        async with httpx.AsyncClient(
            timeout=LIMIT_S, limits=httpx.Limits(max_connections=clients * 2)
        ) as monitor:
            threads = await asyncio.gather(
                *(monitor.post(f"{server.url}/threads", json={}) for _ in range(clients))
            )
            started = time.perf_counter()
            storm.drops = list(
                await asyncio.gather(
                    *(
                        drop_one(server.url, t.json()["thread_id"], policy, after_tokens, monitor)
                        for t in threads
                    )
                )
            )
            storm.wall_s = time.perf_counter() - started
        await asyncio.sleep(1.0)
        storm.after = snapshot(server.pid, server.port)
        result.storms.append(storm)
        print(f"[bench]   W6 storm {number + 1}: {policy} {storm.statuses()}", flush=True)
    return result
