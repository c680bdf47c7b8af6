"""The LangGraph Agent Server protocol: the routes the stock `langgraph-sdk` calls."""

from fastapi import APIRouter

from server.api.protocol import (
    assistants,
    crons,
    runs,
    store,
    system,
    thread_join,
    thread_stream,
    threads,
)

router = APIRouter()
for part in (assistants, threads, crons, runs, store, system, thread_stream, thread_join):
    router.include_router(part.router)
