"""Structured logs: one JSON object per line on stderr, one line per request.

Texts are never logged unless the server runs with ``--log-texts``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from restorer.serving.monitoring import Metrics

log = logging.getLogger("restorer.serve")

_INFO_KEY = "restorer.request"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(level: str = "info") -> None:
    """Send ``restorer.serve`` records to stderr as JSON lines (idempotent)."""
    log.setLevel(level.upper())
    log.propagate = False
    if not any(getattr(h, "_restorer_json", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._restorer_json = True  # type: ignore[attr-defined]
        log.addHandler(handler)


def request_info(scope: Scope) -> dict[str, Any]:
    """Per-request fields the handlers fill in for the log line (``n_texts``, ``texts``)."""
    return scope.setdefault(_INFO_KEY, {})


class RequestLogMiddleware:
    """Times every HTTP request, counts it in the metrics, logs it and tags it with a request id
    (the client's ``X-Request-ID`` when it is sane, else a new one), echoed in the response."""

    def __init__(self, app: ASGIApp, metrics: Metrics, log_texts: bool = False) -> None:
        self.app = app
        self.metrics = metrics
        self.log_texts = log_texts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = _request_id(scope)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._done(scope, request_id, status, time.perf_counter() - start)

    def _done(self, scope: Scope, request_id: str, status: int, seconds: float) -> None:
        route = scope.get("route")
        route_path = getattr(route, "path", None) or "unmatched"
        self.metrics.request_done(route_path, scope["method"], status, seconds)
        info = request_info(scope)
        if status == 200 and info.get("n_texts"):
            self.metrics.texts.inc(info["n_texts"])
        fields: dict[str, Any] = {
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "latency_ms": round(seconds * 1000, 2),
            "n_texts": info.get("n_texts"),
            "request_id": request_id,
            "client": (scope.get("client") or ("", 0))[0],
        }
        if self.log_texts and "texts" in info:
            fields["texts"] = list(info["texts"])
        log.info("request", extra={"fields": fields})


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            given = value.decode("latin-1")
            if _REQUEST_ID_RE.match(given):
                return given
    return uuid.uuid4().hex
