"""The audit trail: one append-only row per tool execution, denial, approval and security event."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from graph.redaction import Redactor
from tools.database import Connection, is_postgres
from tools.migrations import Migration, columns_of
from tools.postgres import pg_schema
from tools.sqlite import fetch_all, fetch_one, now_iso

log = logging.getLogger("taskagent.audit")

AuditKind = Literal["tool", "denied", "approval", "login_failed", "budget", "rate_limit", "guard"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,
    kind TEXT NOT NULL,
    user TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT '',
    thread_id TEXT NOT NULL DEFAULT '',
    run_id TEXT NOT NULL DEFAULT '',
    step INTEGER NOT NULL DEFAULT 0,
    tool TEXT NOT NULL DEFAULT '',
    tool_call_id TEXT NOT NULL DEFAULT '',
    arguments TEXT NOT NULL DEFAULT '{}',
    result_summary TEXT NOT NULL DEFAULT '',
    success INTEGER NOT NULL DEFAULT 1,
    error TEXT NOT NULL DEFAULT '',
    latency_ms REAL NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    detail TEXT NOT NULL DEFAULT '{}',
    call_key TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_user ON audit (user, ts);
CREATE INDEX IF NOT EXISTS audit_kind ON audit (kind, ts);
-- A tool call is audited once per kind even when a node re-runs after a resume or crash;
-- keyed by the run's identity (tools.tool_results.call_key), as providers reuse tool call ids.
CREATE UNIQUE INDEX IF NOT EXISTS audit_call_once ON audit (kind, call_key) WHERE call_key != '';
-- Append-only, except the repeat count of the noise kinds (failed logins, rate-limit
-- refusals), which aggregate into one row per client and window instead of a row each.
DROP TRIGGER IF EXISTS audit_no_update;
CREATE TRIGGER audit_no_update BEFORE UPDATE OF id, ts, kind, user, role, thread_id, run_id,
    step, tool, tool_call_id, arguments, result_summary, success, error, latency_ms, cost_usd,
    call_key
ON audit BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_counts_only BEFORE UPDATE OF detail ON audit
WHEN OLD.kind NOT IN ('login_failed', 'rate_limit')
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
"""


async def _add_call_key(conn: Connection) -> None:
    """Give a first-release trail (audited once per model call id) its `call_key` column.

    That release recorded no schema version, so its table is known by its columns; its
    once-per-call index keyed by the model's id goes (ids are reused across turns).
    """
    found = await columns_of(conn, "audit")
    if found and "call_key" not in found:
        await conn.execute("ALTER TABLE audit ADD COLUMN call_key TEXT NOT NULL DEFAULT ''")
        await conn.execute("DROP INDEX IF EXISTS audit_once")


# The same rule on PostgreSQL: only the count of the noise kinds may change, nothing goes.
PG_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
        OR (to_jsonb(NEW) - 'detail') IS DISTINCT FROM (to_jsonb(OLD) - 'detail')
        OR (NEW.detail IS DISTINCT FROM OLD.detail
            AND OLD.kind NOT IN ('login_failed', 'rate_limit')) THEN
        RAISE EXCEPTION 'the audit trail is append-only';
    END IF;
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS audit_append_only ON audit;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
"""

# Retention (TASKAGENT_AUDIT_RETENTION_DAYS): rows older than the horizon may be deleted, no
# others. The horizon is one row that only moves forward; '' (the start) is older than any
# `ts`. `ts` is ISO-8601 text (`now_iso`), so it is compared as text, byte by byte, as SQLite
# compares it. Written before its guards: the first insert is the only one it ever gets, and
# REPLACE would delete the row without firing a delete trigger.
RETENTION = """
CREATE TABLE IF NOT EXISTS audit_horizon (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    horizon TEXT NOT NULL
);
INSERT OR IGNORE INTO audit_horizon (id, horizon) VALUES (1, '');
CREATE INDEX IF NOT EXISTS audit_ts ON audit (ts);
CREATE TRIGGER IF NOT EXISTS audit_horizon_forward BEFORE UPDATE ON audit_horizon
WHEN NEW.id IS NOT OLD.id OR NEW.horizon < OLD.horizon
BEGIN SELECT RAISE(ABORT, 'the audit horizon only moves forward'); END;
CREATE TRIGGER IF NOT EXISTS audit_horizon_once BEFORE INSERT ON audit_horizon
BEGIN SELECT RAISE(ABORT, 'the audit horizon only moves forward'); END;
CREATE TRIGGER IF NOT EXISTS audit_horizon_kept BEFORE DELETE ON audit_horizon
BEGIN SELECT RAISE(ABORT, 'the audit horizon only moves forward'); END;
DROP TRIGGER IF EXISTS audit_no_delete;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
WHEN OLD.ts >= coalesce((SELECT horizon FROM audit_horizon WHERE id = 1), '')
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
"""

# The same on PostgreSQL, where TRUNCATE (which fires no row trigger) is refused as well and
# COLLATE "C" makes text compare as SQLite's does, whatever the database's collation.
PG_RETENTION = """
CREATE TABLE IF NOT EXISTS audit_horizon (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    horizon TEXT NOT NULL
);
INSERT INTO audit_horizon (id, horizon) VALUES (1, '') ON CONFLICT DO NOTHING;
CREATE INDEX IF NOT EXISTS audit_ts ON audit ((ts COLLATE "C"));
CREATE OR REPLACE FUNCTION audit_horizon_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.id = OLD.id AND NEW.horizon COLLATE "C" >= OLD.horizon COLLATE "C" THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'the audit horizon only moves forward';
END
$$;
DROP TRIGGER IF EXISTS audit_horizon_forward ON audit_horizon;
CREATE TRIGGER audit_horizon_forward BEFORE INSERT OR UPDATE OR DELETE ON audit_horizon
    FOR EACH ROW EXECUTE FUNCTION audit_horizon_forward();
DROP TRIGGER IF EXISTS audit_horizon_no_truncate ON audit_horizon;
CREATE TRIGGER audit_horizon_no_truncate BEFORE TRUNCATE ON audit_horizon
    FOR EACH STATEMENT EXECUTE FUNCTION audit_horizon_forward();
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'the audit trail is append-only';
    END IF;
    IF TG_OP = 'DELETE' THEN
        -- NULL (no horizon row) refuses too.
        IF OLD.ts COLLATE "C" < (SELECT horizon FROM audit_horizon WHERE id = 1) COLLATE "C" THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'the audit trail is append-only';
    END IF;
    IF (to_jsonb(NEW) - 'detail') IS DISTINCT FROM (to_jsonb(OLD) - 'detail')
        OR (NEW.detail IS DISTINCT FROM OLD.detail
            AND OLD.kind NOT IN ('login_failed', 'rate_limit')) THEN
        RAISE EXCEPTION 'the audit trail is append-only';
    END IF;
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS audit_no_truncate ON audit;
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
"""

MIGRATIONS: list[Migration] = [_add_call_key, SCHEMA, RETENTION]
PG_MIGRATIONS: list[Migration] = ["", pg_schema(SCHEMA) + PG_APPEND_ONLY, PG_RETENTION]
"""The audit trail's schema versions, oldest first (see `tools.migrations.migrate`)."""

COLUMNS = (
    "ts, kind, user, role, thread_id, run_id, step, tool, tool_call_id, arguments,"
    " result_summary, success, error, latency_ms, cost_usd, detail, call_key"
)

AGGREGATED_KINDS: frozenset[AuditKind] = frozenset({"login_failed", "rate_limit"})
"""Kinds anyone can cause without a key: counted per window, not stored once per request."""
AGGREGATE_WINDOW_S = 60
MAX_DETAIL_CHARS = 200


@dataclass
class AuditRecord:
    """One audit row (the seeds' schema plus the kind of event)."""

    kind: AuditKind
    user: str
    role: str = ""
    thread_id: str = ""
    run_id: str = ""
    step: int = 0
    tool: str = ""
    tool_call_id: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    result_summary: str = ""
    success: bool = True
    error: str = ""
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)
    ts: str = field(default_factory=now_iso)
    call_key: str = ""


def summarize(result: dict[str, Any]) -> str:
    """Return a one-line summary of a tool result for the audit row."""
    if not result.get("ok"):
        return f"error: {str(result.get('error', ''))[:200]}"
    if "task" in result:
        return f"{result['task']['id']} {result['task']['status']}"
    if "deleted" in result:
        return f"deleted {result['deleted']['id']}"
    if "tasks" in result:
        return f"{result.get('count', len(result['tasks']))} task(s)"
    if "total" in result:
        return f"summary of {result['total']} task(s)"
    return "ok"


def completed(audit: AuditRecord, result: dict[str, Any], seconds: float) -> AuditRecord:
    """Return the audit record filled in with a tool's outcome."""
    audit.result_summary = summarize(result)
    audit.success = bool(result.get("ok"))
    audit.error = "" if audit.success else str(result.get("error", ""))[:500]
    audit.latency_ms = round(seconds * 1000, 2)
    return audit


async def insert_audit(conn: Connection, record: AuditRecord, redactor: Redactor) -> None:
    """Append a row (inside the caller's transaction, if any) and log it (under "audit").

    Arguments, details and error texts are redacted first: secrets never reach the trail.
    """
    row = asdict(record)
    for name in ("arguments", "detail", "error", "result_summary"):
        row[name] = redactor.value(row[name])
    values = [
        json.dumps(row[name]) if name in ("arguments", "detail") else row[name]
        for name in (c.strip() for c in COLUMNS.split(","))
    ]
    await conn.execute(
        f"INSERT OR IGNORE INTO audit ({COLUMNS}) VALUES ({', '.join('?' * len(values))})", values
    )
    log.info("audit %s", record.kind, extra={"audit": row})


async def count_audit(
    conn: Connection,
    record: AuditRecord,
    redactor: Redactor,
    window_s: float = AGGREGATE_WINDOW_S,
) -> None:
    """Count a repeated noise event: one row per kind, user, tool and client per window.

    The first event of a window is appended with `detail.count` 1 (its strings cut to
    MAX_DETAIL_CHARS); later ones in the window add one to that count and set `last_ts`.
    """
    # Redacted before it is cut, so a secret cut in half is still found whole.
    detail = {
        k: v[:MAX_DETAIL_CHARS] if isinstance(v, str) else v
        for k, v in redactor.value(record.detail).items()
    }
    client = detail.get("client")
    since = (datetime.now(UTC) - timedelta(seconds=window_s)).isoformat(timespec="seconds")
    row = await fetch_one(
        conn,
        "SELECT id, detail FROM audit WHERE kind = ? AND user = ? AND tool = ? AND ts >= ?"
        " AND json_extract(detail, '$.client') IS ? ORDER BY id DESC LIMIT 1",
        (record.kind, record.user, record.tool, since, client),
    )
    if row is None:
        await insert_audit(conn, replace(record, detail={**detail, "count": 1}), redactor)
        return
    counted = json.loads(row[1])
    counted.update(count=int(counted.get("count", 1)) + 1, last_ts=now_iso())
    await conn.execute("UPDATE audit SET detail = ? WHERE id = ?", (json.dumps(counted), row[0]))


async def query_audit(
    conn: Connection,
    *,
    user: str | None = None,
    kind: str | None = None,
    tool: str | None = None,
    thread_id: str | None = None,
    since: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Return audit rows matching every given filter, newest first."""
    where, params = ["1 = 1"], []
    for column, value in (("user", user), ("kind", kind), ("tool", tool), ("thread_id", thread_id)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if since:
        where.append("ts >= ?")
        params.append(since)
    names = ["id", *(c.strip() for c in COLUMNS.split(","))]
    rows = [
        dict(zip(names, row, strict=True))
        for row in await fetch_all(
            conn,
            f"SELECT id, {COLUMNS} FROM audit WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
    ]
    for row in rows:
        row["arguments"] = json.loads(row["arguments"])
        row["detail"] = json.loads(row["detail"])
        row["success"] = bool(row["success"])
    return rows


async def advance_horizon(conn: Connection, cutoff: str) -> str:
    """Move the retention horizon forward to `cutoff` (never back); return the horizon now.

    `cutoff` is a `ts` in the trail's own format (`now_iso`); rows older than the horizon
    are the only ones the database lets anyone delete.
    """
    row = await fetch_one(conn, "SELECT horizon FROM audit_horizon WHERE id = 1")
    horizon = str(row[0]) if row else ""
    # Compared here, not in SQL: Python orders text by code point, as the triggers do.
    if cutoff > horizon:
        await conn.execute("UPDATE audit_horizon SET horizon = ? WHERE id = 1", (cutoff,))
        return cutoff
    return horizon


async def delete_older(conn: Connection, cutoff: str, limit: int) -> int:
    """Delete up to `limit` rows older than `cutoff` (oldest first); return how many went."""
    older = 'ts COLLATE "C" < ?' if is_postgres(conn) else "ts < ?"
    cur = await conn.execute(
        f"DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE {older} ORDER BY id LIMIT ?)",
        (cutoff, limit),
    )
    return int(cur.rowcount)
