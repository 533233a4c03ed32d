"""Errors: ``APIError``, the JSON error body every failure is answered with, and the handlers.

Every error the server answers is ``{"error": message}`` (plus ``limit`` when a limit was hit),
whether a handler raised it, FastAPI refused the request or something unexpected failed.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from restorer.serving.schemas import ErrorBody

log = logging.getLogger("restorer.serve")


class APIError(Exception):
    """An error answered as ``{"error": message}`` (plus ``limit`` when a limit was hit)."""

    def __init__(
        self, status: int, message: str, limit: str | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.limit = limit
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return {"error": self.message, **({"limit": self.limit} if self.limit else {})}


class SafeJSONResponse(JSONResponse):
    """UTF-8 JSON; texts with lone surrogates (valid in JSON, not in UTF-8) come out escaped."""

    def render(self, content: Any) -> bytes:
        try:
            return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(content, separators=(",", ":")).encode("ascii")


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorBody,
        "description": "Malformed body: not UTF-8, not JSON, wrong tensor name or shape",
    },
    404: {"model": ErrorBody, "description": "Unknown model"},
    413: {
        "model": ErrorBody,
        "description": "A limit was hit: body bytes, texts per request or characters per text",
    },
    422: {"model": ErrorBody, "description": "The JSON does not match the request schema"},
    500: {"model": ErrorBody, "description": "The model failed on this request"},
    503: {
        "model": ErrorBody,
        "description": "Not ready, overloaded (queue timeout or full) or shutting down",
    },
}


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> Response:
        return SafeJSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return SafeJSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        return SafeJSONResponse({"error": f"invalid request: {where}"}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)
        return SafeJSONResponse({"error": "internal server error"}, status_code=500)
