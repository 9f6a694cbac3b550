"""The OpenAI-compatible routes: `POST /v1/embeddings`, `GET /v1/models`, `GET /v1/models/{model}`.

They answer as OpenAI's API does, so the `openai` SDKs and LangChain's `OpenAIEmbeddings` work
with their defaults (the SDK asks for base64 unless told otherwise). Their errors, all of them,
are OpenAI's `{"error": {"message", "type", "param", "code"}}` (`app.py` asks `is_openai_path`).
The served model comes from the typed settings (`settings.ServedModel`).
"""

from __future__ import annotations

import base64
import math
import sys
import urllib.parse
from array import array
from typing import Annotated, Any

from tandem_common.adapters.endpoint import invoke_inline
from tandem_common.api.http import APPLICATION_JSON, Body, Path, Response, Router
from tandem_common.errors import BadRequest, EndpointError, ModelNotFound
from tandem_common.models import (
    EmbeddingItem,
    EmbeddingsRequest,
    EmbeddingsResponse,
    EmbeddingsUsage,
    Model,
    ModelCard,
    ModelList,
    OpenAIErrorBody,
    OpenAIErrorInfo,
)
from tandem_common.settings import ServedModel, get_settings
from tandem_common.text.normalise import normalise_text
from tandem_common.text.wordpiece import SPECIAL_TOKENS, count_tokens

OWNED_BY = "tandem"
_BIG_ENDIAN = sys.byteorder == "big"

router = Router()


def is_openai_path(path: str) -> bool:
    """Whether a request path is one of these routes (so its errors take OpenAI's shape)."""
    path = path.rstrip("/")
    return path == "/v1/embeddings" or path == "/v1/models" or path.startswith("/v1/models/")


def openai_error(status: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error body. `type` follows the status as OpenAI's does; `code` is Tandem's."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    info = OpenAIErrorInfo(message=message, type=kind, param=param, code=code)
    return OpenAIErrorBody(error=info).model_dump(mode="json")


def _responses(ok_model: type[Model], *errors: int) -> dict[int, dict[str, Any]]:
    json_ct = APPLICATION_JSON
    out: dict[int, dict[str, Any]] = {
        200: {"description": "OK", "content": {json_ct: {"model": ok_model}}}
    }
    for code in (400, 413, 500, *errors):  # 400 also for what other routes answer with 422
        out[code] = {"description": "error", "content": {json_ct: {"model": OpenAIErrorBody}}}
    return out


def _ok(model: Model) -> Response[Any]:
    return Response(
        status_code=200,
        content_type=APPLICATION_JSON,
        body=model.model_dump(mode="json"),
    )


def _served_name(served: ServedModel, requested: str) -> str:
    name = served.resolve(requested)
    if name is None:
        raise ModelNotFound(
            f"The model '{requested}' does not exist; this API serves '{served.name}' "
            "(GET /v1/models)",
            param="model",
        )
    return name


def _output_dims(served: ServedModel, requested: int | None) -> int:
    if requested is None or requested == served.dimensions:
        return served.dimensions
    if served.truncatable and requested < served.dimensions:
        return requested
    if served.truncatable:
        allowed = f"at most {served.dimensions}"
    else:
        allowed = f"{served.dimensions} (it cannot be shortened)"
    raise BadRequest(
        f"dimensions must be {allowed} for {served.name}, got {requested}", param="dimensions"
    )


def _floats(row: bytes) -> array[float]:
    """Little-endian float32 bytes as an array of floats (stdlib: no numpy in the layer)."""
    values = array("f")
    values.frombytes(row)
    if _BIG_ENDIAN:
        values.byteswap()
    return values


def _le_bytes(values: array[float]) -> bytes:
    if _BIG_ENDIAN:
        values = array("f", values)
        values.byteswap()
    return values.tobytes()


def _shorten(row: bytes, dims: int) -> bytes:
    """The first `dims` components, L2-normalised again (as OpenAI shortens text-embedding-3)."""
    head = _floats(row)[:dims]
    norm = math.sqrt(math.fsum(x * x for x in head))
    return _le_bytes(array("f", (x / norm for x in head)) if norm else head)


def _embedding(row: bytes, dims: int, encoding_format: str | None) -> list[float] | str:
    if len(row) > dims * 4:
        row = _shorten(row, dims)
    if encoding_format == "base64":  # OpenAI's base64: the little-endian float32 bytes
        return base64.b64encode(row).decode("ascii")
    return _floats(row).tolist()


@router.post(
    "/v1/embeddings",
    summary="Create embeddings (OpenAI-compatible)",
    responses=_responses(EmbeddingsResponse, 404, 502, 503),
)
def create_embeddings(request: Annotated[EmbeddingsRequest, Body()]) -> Response[Any]:
    settings = get_settings()
    served = settings.model
    name = served.name if request.model is None else _served_name(served, request.model)
    dims = _output_dims(served, request.dimensions)
    texts = request.texts()
    vectors = invoke_inline(settings.resources.endpoint_name, texts)
    if vectors.dims != served.dimensions:
        raise EndpointError(
            f"the model endpoint returned {vectors.dims}-dimensional vectors, but "
            f"MODEL_DIMENSIONS is {served.dimensions}: the api's model settings are wrong"
        )
    tokens = sum(count_tokens(normalise_text(t)) + SPECIAL_TOKENS for t in texts)
    return _ok(
        EmbeddingsResponse(
            data=[
                EmbeddingItem(index=i, embedding=_embedding(row, dims, request.encoding_format))
                for i, row in enumerate(vectors.rows)
            ],
            model=name,
            usage=EmbeddingsUsage(prompt_tokens=tokens, total_tokens=tokens),
        )
    )


def _card(served: ServedModel) -> ModelCard:
    return ModelCard(id=served.name, created=0, owned_by=OWNED_BY)


@router.get(
    "/v1/models",
    summary="List the served models (OpenAI-compatible)",
    responses=_responses(ModelList),
)
def list_models() -> Response[Any]:
    return _ok(ModelList(data=[_card(get_settings().model)]))


@router.get(
    "/v1/models/<model_id>",
    summary="Describe a served model (OpenAI-compatible); an alias answers as its model",
    responses=_responses(ModelCard, 404),
)
def retrieve_model(model_id: Annotated[str, Path(max_length=256)]) -> Response[Any]:
    served = get_settings().model
    # The SDKs percent-encode the id ("/" in a Hugging Face name is %2F); the route gets it raw.
    _served_name(served, urllib.parse.unquote(model_id))
    return _ok(_card(served))
