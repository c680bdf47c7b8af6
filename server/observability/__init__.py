"""Structured logs and LangSmith tracing."""
