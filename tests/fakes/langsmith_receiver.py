"""A local stand-in for the LangSmith API: accepts what the real client posts and keeps it.

The client sends runs as multipart batches (`/runs/multipart`), one part per field of each run
(`post.<id>`, `post.<id>.inputs`, `patch.<id>.outputs`, ...), or as JSON to `/runs/batch`;
`runs()` reassembles both into one dict per run id, the way LangSmith would store them.
"""

from __future__ import annotations

import email.parser
import email.policy
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LangSmithReceiver:
    """An HTTP server on a loopback port that records every request the client makes."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self._runs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                encoding = (self.headers.get("content-encoding") or "").lower()
                # Without a compression flag in /info the client sends plain bodies; gzip is
                # accepted in case a future client compresses anyway.
                return gzip.decompress(body) if encoding == "gzip" else body

            def _reply(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                receiver._record("GET", self.path, dict(self.headers), b"")
                if self.path.startswith("/info"):
                    self._reply(200, {"version": "0.0.0-local", "batch_ingest_config": {}})
                else:
                    self._reply(404, {"detail": "not here"})

            def do_POST(self) -> None:
                body = self._body()
                receiver._record("POST", self.path, dict(self.headers), body)
                receiver._ingest(self.path, self.headers.get("content-type", ""), body)
                self._reply(200, {})

            do_PATCH = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _record(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        with self._lock:
            self.requests.append((method, path, headers, body))

    def _merge(self, run_id: str, fields: dict[str, Any]) -> None:
        with self._lock:
            self._runs.setdefault(run_id, {}).update(fields)

    def _ingest(self, path: str, content_type: str, body: bytes) -> None:
        if path.startswith("/runs/multipart"):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {content_type}\r\n\r\n".encode() + body
            )
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition") or ""
                raw = part.get_payload(decode=True)
                payload = json.loads(raw if isinstance(raw, bytes) else b"null")
                kind, _, rest = str(name).partition(".")
                run_id, _, field = rest.partition(".")
                if kind in ("post", "patch"):
                    self._merge(run_id, {field: payload} if field else payload)
        elif path.startswith("/runs/batch"):
            batch = json.loads(body)
            for run in [*batch.get("post", []), *batch.get("patch", [])]:
                self._merge(str(run["id"]), run)
        elif path.rstrip("/") == "/runs" or path.startswith("/runs/"):
            run = json.loads(body)
            run_id = str(run.get("id") or path.rsplit("/", 1)[-1])
            self._merge(run_id, run)

    def runs(self) -> list[dict[str, Any]]:
        """Every run seen so far, each with its post and patch fields merged."""
        with self._lock:
            return [{"id": run_id, **fields} for run_id, fields in self._runs.items()]

    def raw(self) -> str:
        """Everything the client sent, as text, for asserting what must never appear."""
        with self._lock:
            return "\n".join(body.decode("utf-8", "replace") for *_, body in self.requests)
