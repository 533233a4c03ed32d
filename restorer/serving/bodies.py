"""Request bodies: read them within ``max_body_bytes``, drain what a handler left unread, parse
the JSON against a request schema, and check the limits on texts.

Every failure is an ``APIError`` (400 malformed, 413 over a limit, 422 not the schema).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from restorer.serving.errors import APIError
from restorer.serving.logs import request_info
from restorer.serving.settings import ServeConfig, flag_name


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be longer than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(f"{declared} bytes", limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(f"more than {limit} bytes", limit)
        chunks.append(chunk)
    return b"".join(chunks)


# how much of a request body the server reads and throws away, and for how long, to answer a
# client it has already answered (e.g. 413): past these it answers with "Connection: close"
DRAIN_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 15.0


class DrainBodyMiddleware:
    """Reads and discards the unread rest of a request body before a response goes out.

    Handlers answer some requests without reading their whole body: ``read_body`` refuses one
    over ``max_body_bytes`` as soon as it knows, and a wrong model or method never reads it. If
    the server then closed the connection (the client sent ``Connection: close``, as ``urllib``
    does, or spoke HTTP/1.0, or the server is stopping) with the body's rest unread, the kernel
    would reset it, and a client that writes its whole body before reading the response (as
    ``requests``, ``urllib`` and ``http.client`` do) would see "connection reset by peer", not the
    answer. So, when the response starts, the rest of the body is read and thrown away, at most
    ``max_bytes`` for at most ``max_seconds``; past those (or a declared length over
    ``max_bytes``) the response says ``Connection: close`` and the server closes without reading
    on. A client waiting for ``100 Continue`` that was never asked for its body is not asked now:
    it gets the answer with ``Connection: close`` and need not send the body at all.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = DRAIN_BYTES, max_seconds: float = DRAIN_SECONDS):
        self.app = app
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = headers.get("content-length", "").strip()
        if not (length.isdigit() and int(length) > 0) and "transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body
            return
        declared = int(length) if length.isdigit() else None
        received = 0
        asked = ended = False

        async def tracked() -> Message:
            nonlocal received, asked, ended
            asked = True
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                ended = not message.get("more_body", False)
            else:
                ended = True  # the client left
            return message

        async def drained(message: Message) -> None:
            if message["type"] == "http.response.start" and not ended:
                waiting = not asked and "100-continue" in headers.get("expect", "").lower()
                too_much = declared is not None and declared - received > self.max_bytes
                if waiting or too_much or not await self._drain(receive):
                    MutableHeaders(scope=message)["connection"] = "close"
            await send(message)

        await self.app(scope, tracked, drained)

    async def _drain(self, receive: Receive) -> bool:
        """Read the body to its end; False if that took more than the bytes or time allowed."""

        async def read_rest() -> bool:
            left = self.max_bytes
            while True:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return True
                left -= len(message.get("body", b""))
                if left < 0:
                    return False

        try:
            return await asyncio.wait_for(read_rest(), self.max_seconds)
        except asyncio.TimeoutError:
            return False


def _too_large(got: str, limit: int) -> APIError:
    return limit_error("max_body_bytes", f"the request body is too large: {got}", limit)


def limit_error(name: str, what: str, limit: int) -> APIError:
    """413 naming the limit, its value, and how to change it."""
    how = f"{flag_name(name)} or RESTORER_{name.upper()}"
    return APIError(413, f"{what}, over the {name} limit of {limit} (set with {how})", limit=name)


def decode_json(body: bytes) -> Any:
    if not body.strip():
        raise APIError(400, "the request body is empty; send a JSON object")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise APIError(400, f"the request body is not valid UTF-8 (bad byte at offset {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise APIError(400, f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise APIError(400, "malformed JSON: nested too deeply") from None


async def parse_body(request: Request, model: type[BaseModel], config: ServeConfig) -> Any:
    obj = decode_json(await read_body(request, config.max_body_bytes))
    if not isinstance(obj, dict):
        raise APIError(422, f"the request body must be a JSON object, not {type(obj).__name__}")
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise APIError(422, describe_validation(exc)) from None


def describe_validation(exc: ValidationError, most: int = 5) -> str:
    parts = []
    for err in exc.errors()[:most]:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".") or "body"
        value = err.get("input")
        shown = (
            f" (got {_short(value)})"
            if err["type"] != "missing" and not isinstance(value, dict | list)
            else ""
        )
        parts.append(f"{where}: {err['msg']}{shown}")
    more = exc.error_count() - most
    return "invalid request: " + "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=True) if not isinstance(value, BaseModel) else repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def check_limits(texts: Sequence[str], config: ServeConfig) -> None:
    if len(texts) > config.max_texts:
        raise limit_error("max_texts", f"too many texts: {len(texts)} in one request", config.max_texts)
    for i, t in enumerate(texts):
        if len(t) > config.max_chars:
            raise limit_error("max_chars", f"text {i} is too long: {len(t)} characters", config.max_chars)


def note_texts(request: Request, texts: Sequence[str]) -> None:
    info = request_info(request.scope)
    info["n_texts"] = len(texts)
    info["texts"] = texts


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a route that parses its body itself as ``model``."""
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}
