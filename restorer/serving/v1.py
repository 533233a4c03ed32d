"""The simple REST route, ``POST /v1/restore``: ``{"text": ...}`` or ``{"texts": [...]}``, with
``"explain": true`` for the edits and spin scores."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request

from restorer.serving.bodies import body_schema, check_limits, note_texts, parse_body
from restorer.serving.errors import ERRORS, APIError, SafeJSONResponse
from restorer.serving.lifecycle import ServerState
from restorer.serving.schemas import RestoreRequest, RestoreResponse


def add_v1_routes(app: FastAPI, state: ServerState) -> None:
    @app.post(
        "/v1/restore", response_model=RestoreResponse, response_model_exclude_none=True, responses=ERRORS,
        tags=["v1"], openapi_extra=body_schema(RestoreRequest),
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


def restore_body(results: list[Any], single: bool, explain: bool) -> dict[str, Any]:
    if single:
        return results[0].to_dict() if explain else {"text": results[0]}
    if explain:
        return {"texts": [r.text for r in results], "explanations": [r.to_dict() for r in results]}
    return {"texts": results}
