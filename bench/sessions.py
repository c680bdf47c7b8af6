"""W3 load generator: chat sessions with think time, run as its own process.

A session is one user in one thread: it sends a message, reads the streamed answer to the
end, thinks for a while (uniformly THINK_S), and sends the next, cycling through MESSAGES.
Sessions start spread over the longest think time so they do not move in lock step; the
measuring window opens after that ramp, and only turns that start inside it are counted.
Every turn is timed from just before its POST; the pacing-only
ideal of a turn is what the scripted model alone spends on it (time to first chunk plus time
per further chunk, for every model call, counted from the chunks that were streamed).

Run by ``bench.concurrency`` as ``python -m bench.sessions URL N WINDOW_S FIRST_MS TOKEN_MS``;
prints one JSON object: the turns and this process's CPU seconds.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from bench.servers import Pacing
from bench.streams import client_for, new_thread, stream_turn

THINK_S = (5.0, 15.0)
MESSAGES = (
    "Create a task to call the plumber about the leak, due Friday",
    "what's on my plate today?",
    "Add a high-priority task: renew the car insurance next week",
    "thanks, that's all for now",
)
TURN_LIMIT_S = 120.0


@dataclass
class Turn:
    """One timed turn of one session."""

    session: int
    started: float
    measured: bool
    latency: float
    ideal: float
    first_token: float
    tokens: int
    ok: bool
    error: str


async def session(
    number: int, url: str, window_s: float, pacing: Pacing, t0: float, turns: list[Turn]
) -> None:
    """Run one session until the window closes; append its turns."""
    rng = random.Random(number)
    async with client_for(url) as client:
        thread_id = await new_thread(client)
        await asyncio.sleep(max(0.0, t0 - time.perf_counter()) + rng.uniform(0, THINK_S[1]))
        index = number
        while time.perf_counter() - t0 < THINK_S[1] + window_s:
            started = time.perf_counter() - t0
            stream = await stream_turn(
                client, thread_id, MESSAGES[index % len(MESSAGES)], TURN_LIMIT_S
            )
            ideal = pacing.ideal_s(list(stream.chunks.values()))
            turns.append(
                Turn(
                    session=number,
                    started=started,
                    measured=started >= THINK_S[1],
                    latency=stream.done if stream.done is not None else float("nan"),
                    ideal=ideal,
                    first_token=stream.first_token if stream.first_token is not None else -1.0,
                    tokens=stream.tokens,
                    ok=stream.ok,
                    error=stream.error,
                )
            )
            index += 1
            await asyncio.sleep(rng.uniform(*THINK_S))


async def run(url: str, sessions: int, window_s: float, pacing: Pacing) -> dict[str, Any]:
    """Run the sessions; the window opens once every session could have its thread."""
    turns: list[Turn] = []
    t0 = time.perf_counter() + 1.0 + sessions * 0.005
    await asyncio.gather(*(session(n, url, window_s, pacing, t0, turns) for n in range(sessions)))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "turns": [asdict(t) for t in turns],
        "client_cpu_s": usage.ru_utime + usage.ru_stime,
        "elapsed_s": time.perf_counter() - t0,
    }


def main() -> None:
    """Parse the positional arguments, run, print the JSON result."""
    url, sessions, window_s, first_ms, token_ms = sys.argv[1:6]
    pacing = Pacing("hosted", float(first_ms), float(token_ms))
    result = asyncio.run(run(url, int(sessions), float(window_s), pacing))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
