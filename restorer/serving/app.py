"""The FastAPI application: ``create_app(config)`` puts the server together.

The app's model loads in a background thread at startup (``restorer.serving.lifecycle``), so
``/v2/health/live`` answers at once and ``/v2/health/ready`` turns 200 once the model is there.
Every model call goes through the dynamic batcher (``restorer.serving.batcher``). The rooms:

* ``lifecycle``: the model's loading, readiness and draining (``ServerState``);
* ``errors``: ``APIError`` and the handlers that answer every failure as ``{"error": ...}``;
* ``bodies``: reading, draining and parsing request bodies, and the limits on them;
* ``v2`` and ``v1``: the KServe v2 (Open Inference Protocol) routes and ``/v1/restore``;
* here: ``/metrics``, the OpenAPI document and ``create_app``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response

from restorer.common import __version__
from restorer.serving import bodies
from restorer.serving.errors import SafeJSONResponse, add_error_handlers
from restorer.serving.lifecycle import Loader, ServerState, default_loader
from restorer.serving.logs import RequestLogMiddleware, configure_logging
from restorer.serving.monitoring import CONTENT_TYPE, Metrics
from restorer.serving.schemas import REQUEST_MODELS
from restorer.serving.settings import ServeConfig
from restorer.serving.v1 import add_v1_routes
from restorer.serving.v2 import add_v2_routes

log = logging.getLogger("restorer.serve")


def add_metrics_route(app: FastAPI, state: ServerState) -> None:
    @app.get("/metrics", response_class=Response, tags=["ops"],
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})  # fmt: skip
    async def metrics() -> Response:
        return Response(state.metrics.exposition(), media_type=CONTENT_TYPE)


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
    add_metrics_route(app, state)
    add_error_handlers(app)
    install_openapi(app, config)
    # inside the log middleware, so the draining counts in the request's time
    app.add_middleware(
        bodies.DrainBodyMiddleware, max_bytes=bodies.DRAIN_BYTES, max_seconds=bodies.DRAIN_SECONDS
    )
    app.add_middleware(RequestLogMiddleware, metrics=metrics, log_texts=config.log_texts)
    return app


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` and worker processes: the settings come from ``RESTORER_*``."""
    return create_app(ServeConfig.from_sources(os.environ))
