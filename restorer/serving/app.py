"""The FastAPI application: KServe v2 (Open Inference Protocol) routes, ``/v1/restore``, metrics.

``create_app(config)`` builds an app whose model loads in a background thread at startup, so
``/v2/health/live`` answers at once and ``/v2/health/ready`` turns 200 once the model is there.
Every model call goes through the dynamic batcher (``restorer.serving.batcher``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from restorer.common import __version__
from restorer.serving.batcher import Batcher, QueueTimeout, RestorerLike, Unavailable
from restorer.serving.logs import RequestLogMiddleware, configure_logging, request_info
from restorer.serving.monitoring import CONTENT_TYPE, Metrics
from restorer.serving.schemas import (
    INPUT_NAME,
    MODEL_NAME,
    OUTPUT_NAME,
    REQUEST_MODELS,
    ErrorBody,
    InferRequest,
    InferResponse,
    Liveness,
    ModelMetadata,
    ModelReadiness,
    Readiness,
    RestoreRequest,
    RestoreResponse,
    ServerMetadata,
)
from restorer.serving.settings import ServeConfig, flag_name

log = logging.getLogger("restorer.serve")

Loader = Callable[[], RestorerLike]
# any name is routed (others get a JSON 404); the schema names the one model served
ModelName = Annotated[str, Path(description="the model's name", json_schema_extra={"enum": [MODEL_NAME]})]


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


# ----------------------------------------------------------------------------- state


class ServerState:
    """The model, its batcher and the metrics of one app."""

    def __init__(self, config: ServeConfig, loader: Loader, metrics: Metrics) -> None:
        self.config = config
        self.loader = loader
        self.metrics = metrics
        self.batcher: Batcher | None = None
        self.load_error: str | None = None
        self._lock = threading.Lock()
        self._closing = False

    @property
    def ready(self) -> bool:
        return self.batcher is not None and getattr(self.batcher.restorer, "ready", True)

    def start_loading(self) -> None:
        threading.Thread(target=self._load, name="restorer-load", daemon=True).start()

    def _load(self) -> None:
        start = time.monotonic()
        try:
            restorer = self.loader()
        except Exception as exc:
            self.load_error = f"the model failed to load: {type(exc).__name__}: {exc}"
            log.error("model load failed", extra={"fields": {"error": self.load_error}})
            return
        cfg = self.config
        batcher = Batcher(
            restorer, cfg.max_batch_size, cfg.max_wait_ms / 1000, cfg.queue_timeout_s, cfg.max_queue,
            observer=self.metrics,
        )  # fmt: skip
        with self._lock:
            if self._closing:
                return
            batcher.start()
            self.batcher = batcher
        self.metrics.ready.set(1)
        log.info("model loaded", extra={"fields": {"seconds": round(time.monotonic() - start, 3)}})

    def close(self) -> None:
        """Finish the queued requests and stop the inference worker."""
        with self._lock:
            self._closing = True
            batcher = self.batcher
        if batcher is not None:
            batcher.close(timeout=self.config.graceful_timeout_s or None)
            close = getattr(batcher.restorer, "close", None)  # a model process
            if close is not None:
                close()

    async def run(self, texts: list[str], explain: bool = False) -> list[Any]:
        if self.batcher is None:
            raise APIError(503, self.load_error or "the model is still loading; try again shortly",
                           headers={"Retry-After": "1"})  # fmt: skip
        try:
            return await self.batcher.submit(texts, explain)
        except QueueTimeout as exc:
            self.metrics.queue_timeouts.inc()
            raise APIError(503, str(exc), limit="queue_timeout_s", headers={"Retry-After": "1"}) from None
        except Unavailable as exc:
            raise APIError(503, str(exc), headers={"Retry-After": "1"}) from None
        except Exception as exc:
            raise APIError(500, f"restoring failed: {type(exc).__name__}: {str(exc)[:300]}") from None


def default_loader(config: ServeConfig) -> Loader:
    def load() -> RestorerLike:
        if config.model_process:
            from restorer.serving.model_process import ModelProcess

            return ModelProcess(config)
        from restorer.infer import Restorer

        return Restorer.from_pretrained(
            config.model, device=config.device, batch_size=config.decode_batch_size,
            threads=config.threads, guard=config.guard_config(), backend=config.backend, judge=config.judge,
            styles=config.style_list(),
        )  # fmt: skip

    return load


# ----------------------------------------------------------------------------- request bodies


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


# ----------------------------------------------------------------------------- KServe v2


def infer_texts(req: InferRequest) -> tuple[list[str], list[int]]:
    """The texts of the ``text`` input tensor, and its shape (the schema checked the rest)."""
    tensor = req.inputs[0]
    if math.prod(tensor.shape) != len(tensor.data):
        raise APIError(
            400, f"input {INPUT_NAME!r}: shape {tensor.shape} holds {math.prod(tensor.shape)} elements "
            f"but data has {len(tensor.data)}",
        )  # fmt: skip
    return tensor.data, tensor.shape


def check_model_name(name: str) -> None:
    if name != MODEL_NAME:
        raise APIError(404, f"unknown model {name!r}; this server serves {MODEL_NAME!r}")


def model_metadata() -> dict[str, Any]:
    tensor = {"datatype": "BYTES", "shape": [-1]}
    return {
        "name": MODEL_NAME,
        "versions": [],
        "platform": "pytorch_transformers",
        "inputs": [{"name": INPUT_NAME, **tensor}],
        "outputs": [{"name": OUTPUT_NAME, **tensor}],
    }


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


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
NOT_READY: dict[int | str, dict[str, Any]] = {503: {"model": Readiness, "description": "Not ready"}}


def add_v2_routes(app: FastAPI, state: ServerState) -> None:
    @app.get("/v2", response_model=ServerMetadata, tags=["v2"])
    async def server_metadata() -> Any:
        return {"name": "restorer", "version": __version__, "extensions": []}

    @app.get("/v2/health/live", response_model=Liveness, tags=["v2"])
    async def live() -> Any:
        return {"live": True}

    @app.get("/v2/health/ready", response_model=Readiness, responses=NOT_READY, tags=["v2"])
    async def ready() -> Any:
        return readiness(state)

    @app.get("/v2/models/{model_name}", response_model=ModelMetadata, responses=ERRORS, tags=["v2"])
    async def metadata(model_name: ModelName) -> Any:
        check_model_name(model_name)
        return model_metadata()

    @app.get("/v2/models/{model_name}/ready", response_model=ModelReadiness, responses=ERRORS, tags=["v2"])
    async def model_ready(model_name: ModelName) -> Any:
        check_model_name(model_name)
        return SafeJSONResponse(
            {"name": MODEL_NAME, "ready": state.ready}, status_code=200 if state.ready else 503
        )

    @app.post(
        "/v2/models/{model_name}/infer", response_model=InferResponse, responses=ERRORS, tags=["v2"],
        openapi_extra=_body_schema(InferRequest),
    )  # fmt: skip
    async def infer(model_name: ModelName, request: Request) -> Any:
        check_model_name(model_name)
        req: InferRequest = await parse_body(request, InferRequest, state.config)
        texts, shape = infer_texts(req)
        check_limits(texts, state.config)
        note_texts(request, texts)
        restored = await state.run(texts)
        out = {"name": OUTPUT_NAME, "shape": shape, "datatype": "BYTES", "data": restored}
        body = {"model_name": MODEL_NAME, **({"id": req.id} if req.id is not None else {}), "outputs": [out]}
        return SafeJSONResponse(body)


def readiness(state: ServerState) -> Response:
    if state.ready:
        return SafeJSONResponse({"ready": True})
    body: dict[str, Any] = {"ready": False, **({"error": state.load_error} if state.load_error else {})}
    return SafeJSONResponse(body, status_code=503)


# ----------------------------------------------------------------------------- v1 and metrics


def add_v1_routes(app: FastAPI, state: ServerState) -> None:
    @app.post(
        "/v1/restore", response_model=RestoreResponse, response_model_exclude_none=True, responses=ERRORS,
        tags=["v1"], openapi_extra=_body_schema(RestoreRequest),
    )  # fmt: skip
    async def restore(request: Request) -> Any:
        req: RestoreRequest = await parse_body(request, RestoreRequest, state.config)
        if (req.text is None) == (req.texts is None):
            raise APIError(422, 'give exactly one of "text" (a string) or "texts" (a list of strings)')
        texts = [req.text] if req.text is not None else list(req.texts or [])
        check_limits(texts, state.config)
        note_texts(request, texts)
        results = await state.run(texts, req.explain)
        return SafeJSONResponse(restore_body(results, single=req.text is not None, explain=req.explain))

    @app.get("/metrics", response_class=Response, tags=["ops"],
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})  # fmt: skip
    async def metrics() -> Response:
        return Response(state.metrics.exposition(), media_type=CONTENT_TYPE)


def restore_body(results: list[Any], single: bool, explain: bool) -> dict[str, Any]:
    if single:
        return results[0].to_dict() if explain else {"text": results[0]}
    if explain:
        return {"texts": [r.text for r in results], "explanations": [r.to_dict() for r in results]}
    return {"texts": results}


# ----------------------------------------------------------------------------- errors and schema


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


def install_openapi(app: FastAPI, config: ServeConfig) -> None:
    """FastAPI's schema plus the request bodies (which the handlers parse themselves), with this
    server's limits on texts."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in REQUEST_MODELS:
                js = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(js.pop("$defs", {}))
                components[model.__name__] = js
            document_limits(components, config)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_limits(components: dict[str, Any], config: ServeConfig) -> None:
    texts = {"maxItems": config.max_texts}
    text = {"maxLength": config.max_chars}
    data = components["InferInputTensor"]["properties"]["data"]
    data.update(texts)
    data["items"].update(text)
    restore = components["RestoreRequest"]["properties"]
    restore["text"].update(text)
    restore["texts"].update(texts)
    restore["texts"]["items"].update(text)


# ----------------------------------------------------------------------------- the app


def create_app(config: ServeConfig | None = None, loader: Loader | None = None) -> FastAPI:
    """The server app. ``loader`` returns the model (default: ``Restorer.from_pretrained``)."""
    config = config or ServeConfig()
    configure_logging(config.log_level)
    metrics = Metrics()
    state = ServerState(config, loader or default_loader(config), metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.start_loading()
        yield
        await asyncio.to_thread(state.close)  # the queued requests finish first
        metrics.close()
        log.info("stopped")

    app = FastAPI(
        title="restorer", version=__version__, lifespan=lifespan, default_response_class=SafeJSONResponse,
        description="Restores article-spun text. KServe v2 (Open Inference Protocol) and a simple REST route.",
    )  # fmt: skip
    app.state.restorer = state
    add_v2_routes(app, state)
    add_v1_routes(app, state)
    add_error_handlers(app)
    install_openapi(app, config)
    # inside the log middleware, so the draining counts in the request's time
    app.add_middleware(DrainBodyMiddleware, max_bytes=DRAIN_BYTES, max_seconds=DRAIN_SECONDS)
    app.add_middleware(RequestLogMiddleware, metrics=metrics, log_texts=config.log_texts)
    return app


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` and worker processes: the settings come from ``RESTORER_*``."""
    return create_app(ServeConfig.from_sources(os.environ))
