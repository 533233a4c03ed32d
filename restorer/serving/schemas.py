"""Request and response bodies (pydantic), for validation and for the OpenAPI schema.

Requests are strict: a number is not a string, unknown keys are an error.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

MODEL_NAME = "restorer"
INPUT_NAME = "text"
OUTPUT_NAME = "restored"


def _not_nullable(schema: dict[str, Any]) -> None:
    """Optional request keys may be left out, but not sent as null: say so in the schema."""
    for prop in schema.get("properties", {}).values():
        alternatives = prop.get("anyOf", [])
        kept = [a for a in alternatives if a.get("type") != "null"]
        if len(kept) == 1 and len(alternatives) == 2:
            del prop["anyOf"]
            prop.update(kept[0])
        if prop.get("default", 0) is None:
            del prop["default"]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra=_not_nullable)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                if value is None and key in cls.model_fields:
                    raise ValueError(f"{key} must not be null (leave it out instead)")
        return data


# ----------------------------------------------------------------------------- KServe v2


def _whole(value: int | float) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("a dimension must be a whole number")
    if value < 0:
        raise ValueError("a dimension must not be negative")
    return int(value)


# JSON Schema counts 2.0 as an integer: so does the server
Dimension = Annotated[int | float, AfterValidator(_whole), WithJsonSchema({"type": "integer", "minimum": 0})]


class InferInputTensor(_Strict):
    name: Literal["text"] = Field(description="the input's name")
    shape: list[Dimension] = Field(
        description="tensor shape; its product must equal the length of data, e.g. [N]"
    )
    datatype: Literal["BYTES"] = Field(description="restorer takes texts: BYTES")
    data: list[str] = Field(description="the texts, flattened in row-major order")
    parameters: dict[str, Any] | None = None


class RequestedOutput(_Strict):
    name: Literal["restored"]
    parameters: dict[str, Any] | None = None


class InferRequest(_Strict):
    id: str | None = Field(default=None, description="echoed in the response")
    parameters: dict[str, Any] | None = None
    inputs: list[InferInputTensor] = Field(
        min_length=1, max_length=1, description=f'one tensor, "{INPUT_NAME}"'
    )
    outputs: list[RequestedOutput] | None = Field(default=None, description=f'optional: "{OUTPUT_NAME}"')


class InferOutputTensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[str]


class InferResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    outputs: list[InferOutputTensor]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str] = []
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str] = []


class Liveness(BaseModel):
    live: bool


class Readiness(BaseModel):
    ready: bool
    error: str | None = None


class ModelReadiness(BaseModel):
    name: str
    ready: bool


# ----------------------------------------------------------------------------- /v1/restore


class RestoreRequest(_Strict):
    model_config = ConfigDict(
        json_schema_extra=lambda schema: (
            _not_nullable(schema),
            schema.update(oneOf=[{"required": ["text"]}, {"required": ["texts"]}]),
        )
    )
    text: str | None = Field(default=None, description="one document (give text or texts)")
    texts: list[str] | None = Field(default=None, description="several documents, answered in the same order")
    explain: bool = Field(default=False, description="add the edits, rejected edits and spin scores")


class EditModel(BaseModel):
    start: int
    end: int
    original: str
    replacement: str
    confidence: float
    accepted: bool
    reason: str


class SentenceScore(BaseModel):
    start: int
    end: int
    spin_score: float


class ExplanationModel(BaseModel):
    text: str
    edits: list[EditModel]
    rejected: list[EditModel]
    spin_score: float
    sentences: list[SentenceScore]


class RestoreResponse(BaseModel):
    text: str | None = Field(default=None, description="the restored document (for text)")
    texts: list[str] | None = Field(default=None, description="the restored documents (for texts)")
    edits: list[EditModel] | None = Field(default=None, description="explain, for text")
    rejected: list[EditModel] | None = Field(default=None, description="explain, for text")
    spin_score: float | None = Field(default=None, description="explain, for text")
    sentences: list[SentenceScore] | None = Field(default=None, description="explain, for text")
    explanations: list[ExplanationModel] | None = Field(default=None, description="explain, for texts")


class ErrorBody(BaseModel):
    error: str
    limit: str | None = Field(default=None, description="the limit that was hit, when one was")


REQUEST_MODELS: tuple[type[BaseModel], ...] = (InferRequest, RestoreRequest)
