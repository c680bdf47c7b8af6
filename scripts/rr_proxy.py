"""A round-robin TCP load balancer on loopback, for watching replicas take turns and fail over.

Each new client connection goes to the next replica in turn; a replica that refuses the
connection (stopped, killed) is skipped, so clients keep being served while any replica is
up. It balances connections, not requests, as an L4 balancer does: a kept-alive client stays
on its replica until that connection closes.

    python -m scripts.rr_proxy LISTEN_PORT BACKEND_PORT [BACKEND_PORT ...]
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys

HOST = "127.0.0.1"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class RoundRobin:
    """Hands each connection to the next replica that accepts it."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = backends
        self._next = itertools.cycle(range(len(backends)))
        self.served: dict[int, int] = dict.fromkeys(backends, 0)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Connect the client to a replica and copy bytes both ways until either side closes."""
        for _ in self.backends:
            port = self.backends[next(self._next)]
            try:
                up_reader, up_writer = await asyncio.open_connection(HOST, port)
            except OSError:
                continue
            self.served[port] += 1
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            return
        writer.close()  # no replica is up

    async def serve(self, port: int) -> None:
        """Listen on `port` until cancelled."""
        server = await asyncio.start_server(self.handle, HOST, port)
        async with server:
            await server.serve_forever()


def main() -> None:
    """Balance LISTEN_PORT over the BACKEND_PORTs until interrupted."""
    listen, *backends = (int(arg) for arg in sys.argv[1:])
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(RoundRobin(backends).serve(listen))


if __name__ == "__main__":
    main()
