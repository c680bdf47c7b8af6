"""The LangGraph store, one private space per user: what `/store/*` and `runtime.store` see.

Items live in LangGraph's own `AsyncSqliteStore` (store.sqlite in the data dir), or its
`AsyncPostgresStore` on the replica's pool when `DATABASE_URL` is set. Every
namespace a user (or a graph run acting for them) names is stored under one more, first,
label: the user's id. It is added on the way in and stripped on the way out, so each user
sees only their own items, under exactly the namespaces they wrote, and no namespace a
client can name reaches another user's. A graph node's `runtime.store` acts for the owner of
the thread the run runs on — the same user a client of that thread authenticates as —
whatever graph it is and whatever the run's context says.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

from langgraph.config import get_config
from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
)
from langgraph.store.postgres.aio import AsyncPostgresStore
from langgraph.store.sqlite.aio import AsyncSqliteStore

from graph.settings import Settings
from server.runs.threads import ThreadIndex
from tools.database import acquire_pool, release_pool
from tools.postgres import setup_lock
from tools.sqlite import open_sqlite

# Expired items (a `ttl` given with put) are deleted by the store's sweeper this often.
TTL_SWEEP_MINUTES = 5
SETUP_LOCK = "taskagent:store:setup"


def user_label(user_id: str) -> str:
    """The first namespace label of a user's items (a store label may hold no period)."""
    return user_id.replace("%", "%25").replace(".", "%2E")


def _scoped(label: str, namespace: tuple[str, ...]) -> tuple[str, ...]:
    return (label, *namespace)


def _scope_op(label: str, op: Op) -> Op:
    if isinstance(op, GetOp | PutOp):
        return op._replace(namespace=_scoped(label, op.namespace))
    if isinstance(op, SearchOp):
        return op._replace(namespace_prefix=_scoped(label, op.namespace_prefix))
    if isinstance(op, ListNamespacesOp):
        conditions = [
            MatchCondition("prefix", _scoped(label, c.path)) if c.match_type == "prefix" else c
            for c in op.match_conditions or ()
        ]
        if not any(c.match_type == "prefix" for c in conditions):
            conditions.insert(0, MatchCondition("prefix", (label,)))
        depth = None if op.max_depth is None else op.max_depth + 1
        return op._replace(match_conditions=tuple(conditions), max_depth=depth)
    raise TypeError(f"unknown store operation {type(op).__name__}")


def _unscope_item(item: Item) -> Item:
    if isinstance(item, SearchItem):
        return SearchItem(
            item.namespace[1:],
            item.key,
            item.value,
            item.created_at,
            item.updated_at,
            item.score,
        )
    return Item(
        namespace=item.namespace[1:],
        key=item.key,
        value=item.value,
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


def _unscope_result(op: Op, result: Result) -> Result:
    if isinstance(op, GetOp) and isinstance(result, Item):
        return _unscope_item(result)
    if isinstance(op, SearchOp) and isinstance(result, list):
        return [_unscope_item(item) for item in result if isinstance(item, SearchItem)]
    if isinstance(op, ListNamespacesOp) and isinstance(result, list):
        return [namespace[1:] for namespace in result if isinstance(namespace, tuple)]
    return result


class UserSpace(BaseStore):
    """The store as one user sees it: their own namespaces, nobody else's."""

    supports_ttl = True

    def __init__(self, inner: BaseStore, user_id: str) -> None:
        self._inner = inner
        self._label = user_label(user_id)
        self.ttl_config = inner.ttl_config

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the operations in this user's space."""
        ops = list(ops)
        results = self._inner.batch([_scope_op(self._label, op) for op in ops])
        return [_unscope_result(op, result) for op, result in zip(ops, results, strict=True)]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the operations in this user's space."""
        ops = list(ops)
        results = await self._inner.abatch([_scope_op(self._label, op) for op in ops])
        return [_unscope_result(op, result) for op, result in zip(ops, results, strict=True)]


class UserStore(BaseStore):
    """The store compiled into every served graph: each call acts for the run's thread owner.

    `for_user` gives the HTTP routes the same view for an authenticated caller.
    """

    supports_ttl = True

    def __init__(
        self,
        inner: AsyncSqliteStore | AsyncPostgresStore,
        threads: ThreadIndex,
        database_url: str | None = None,
    ) -> None:
        self.inner = inner
        self._database_url = database_url
        self._threads = threads
        self._loop = asyncio.get_running_loop()
        self.ttl_config = inner.ttl_config

    def for_user(self, user_id: str) -> UserSpace:
        """The store as `user_id` sees it."""
        return UserSpace(self.inner, user_id)

    async def _space_of(self, thread_id: str) -> UserSpace:
        info = await self._threads.get(thread_id)
        if info is None:
            raise PermissionError(f"store: thread {thread_id} of this run has no owner on record.")
        return self.for_user(info.owner)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the operations in the space of the user the current run acts for."""
        return await (await self._space_of(_run_thread())).abatch(ops)

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the operations from a synchronous node (a worker thread, never the loop)."""
        thread_id = _run_thread()  # read here: the run's config lives in this thread's context
        try:
            if asyncio.get_running_loop() is self._loop:
                raise asyncio.InvalidStateError(
                    "store: call await store.a<method>(...) from async code, not store.<method>."
                )
        except RuntimeError:
            pass

        async def run() -> list[Result]:
            return await (await self._space_of(thread_id)).abatch(ops)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result()

    async def close(self) -> None:
        """Stop the TTL sweeper and close the store's connection."""
        await self.inner.stop_ttl_sweeper(timeout=5)
        if self._database_url:
            await release_pool(self._database_url)  # the replica's pool, shared
        else:
            await self.inner.conn.close()


def _run_thread() -> str:
    try:
        thread_id = get_config().get("configurable", {}).get("thread_id")
    except RuntimeError:
        thread_id = None
    if not thread_id:
        raise PermissionError("store: used outside a run on a thread; it is per user.")
    return str(thread_id)


@asynccontextmanager
async def _file_lock(path: Path) -> AsyncIterator[None]:
    """Hold an exclusive `flock` on `path` (created private) across processes of this host."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


async def open_user_store(settings: Settings, threads: ThreadIndex) -> UserStore:
    """Open the store (store.sqlite, or PostgreSQL), migrated, with its TTL sweeper running."""
    ttl: TTLConfig = {"refresh_on_read": True, "sweep_interval_minutes": TTL_SWEEP_MINUTES}
    url = settings.postgres_url
    if url:
        pool = await acquire_pool(url)
        postgres = AsyncPostgresStore(pool, ttl=ttl)
        try:
            async with setup_lock(pool, SETUP_LOCK):  # replicas starting together: once
                await postgres.setup()
        except BaseException:
            await release_pool(url)
            raise
        await postgres.start_ttl_sweeper()
        return UserStore(postgres, threads, url)
    conn = await open_sqlite(
        settings.store_db,
        busy_timeout_ms=settings.busy_timeout_ms,
        synchronous=settings.sqlite_synchronous,
    )
    inner = AsyncSqliteStore(conn, ttl=ttl)
    # LangGraph's store migrates outside a transaction (ALTER TABLE, then its version row):
    # two processes starting together on one data dir take turns, or one fails half-way.
    async with _file_lock(settings.store_db.with_name(settings.store_db.name + ".setup-lock")):
        await inner.setup()
    await inner.start_ttl_sweeper()
    return UserStore(inner, threads)
