"""The durable checkpoint saver: SQLite on the data dir, blobs compressed.

The server and the CLI open it through `AgentRunner`; `langgraph dev` (Studio) gets it from
`langgraph.json`'s `checkpointer.path`, so threads debugged in Studio survive its restarts too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from graph.settings import Settings, get_settings
from tools.codec import compressed_serde
from tools.sqlite import open_sqlite


async def open_saver(settings: Settings) -> AsyncSqliteSaver:
    """Open the checkpoint database under the data dir and create its tables if needed."""
    conn = await open_sqlite(
        settings.checkpoint_db,
        busy_timeout_ms=settings.busy_timeout_ms,
        synchronous=settings.sqlite_synchronous,
    )
    saver = AsyncSqliteSaver(conn, serde=compressed_serde())
    await saver.setup()
    return saver


@asynccontextmanager
async def sqlite_checkpointer() -> AsyncIterator[AsyncSqliteSaver]:
    """Yield the saver for `langgraph dev` and close it when the dev server stops."""
    saver = await open_saver(get_settings())
    try:
        yield saver
    finally:
        await saver.conn.close()
