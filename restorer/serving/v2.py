"""The KServe v2 (Open Inference Protocol) routes: server and model metadata, health, ``infer``.

The one model is named ``restorer``; its input and output are a ``BYTES`` tensor of texts.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import FastAPI, Path, Request
from fastapi.responses import Response

from restorer.common import __version__
from restorer.serving.bodies import body_schema, check_limits, note_texts, parse_body
from restorer.serving.errors import ERRORS, APIError, SafeJSONResponse
from restorer.serving.lifecycle import ServerState
from restorer.serving.schemas import (
    INPUT_NAME,
    MODEL_NAME,
    OUTPUT_NAME,
    InferRequest,
    InferResponse,
    Liveness,
    ModelMetadata,
    ModelReadiness,
    Readiness,
    ServerMetadata,
)

# any name is routed (others get a JSON 404); the schema names the one model served
ModelName = Annotated[str, Path(description="the model's name", json_schema_extra={"enum": [MODEL_NAME]})]


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
        openapi_extra=body_schema(InferRequest),
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
