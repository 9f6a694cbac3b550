"""The search routes: `POST /v1/search` and `DELETE /v1/documents/{id}` (usecases/search.py).

Errors take the API's `{"error": {"code", "message"}}` shape (`app.py`): a body that fails
validation is a 422, no vector index (VectorIndexing=false) a 501 `indexing_disabled`, the
endpoint or the index failing a 502/503.
"""

from __future__ import annotations

import urllib.parse
from functools import lru_cache
from typing import Annotated, Any

from tandem_common.api.http import Body, Path, Response, Router
from tandem_common.api.routes import _json, _responses
from tandem_common.models import DocumentDeleted, SearchRequest, SearchResponse
from tandem_common.settings import Settings, get_settings
from tandem_common.text.decoding import MAX_ID_LENGTH
from tandem_common.usecases.indexing import Indexer
from tandem_common.usecases.search import SearchService

MAX_ENCODED_ID = 3 * 4 * MAX_ID_LENGTH  # the longest id, every UTF-8 byte percent-encoded

router = Router()


@lru_cache(maxsize=1)
def _service_for(settings: Settings) -> SearchService:
    # one writer: a delete is one request's keys, not one of the Map's concurrent steps
    return SearchService(settings, Indexer.from_settings(settings, writers=1))


def search_service() -> SearchService:
    """One per container (per settings: tests change them)."""
    return _service_for(get_settings())


@router.post(
    "/v1/search",
    summary="Search the indexed chunks: the query embedded by the same model, nearest first",
    responses=_responses(200, SearchResponse, 501, 502, 503),
)
def search(request: Annotated[SearchRequest, Body()]) -> Response[Any]:
    """`score` is 1 - the index's cosine distance (the cosine similarity, -1 to 1)."""
    return _json(200, search_service().search(request))


@router.delete(
    "/v1/documents/<document_id>",
    summary="Remove a document's vectors from the index (idempotent: a repeat says found=false)",
    responses=_responses(200, DocumentDeleted, 501, 502, 503),
)
def delete_document(
    document_id: Annotated[str, Path(min_length=1, max_length=MAX_ENCODED_ID)],
) -> Response[Any]:
    """The id percent-encoded (`tandem delete` and `TandemClient` encode it, "/" included)."""
    doc_id = urllib.parse.unquote(document_id)
    if len(doc_id) > MAX_ID_LENGTH:  # no document with such an id can be indexed
        return _json(200, DocumentDeleted(document_id=doc_id, found=False, vectors=0))
    return _json(200, search_service().delete_document(doc_id))
