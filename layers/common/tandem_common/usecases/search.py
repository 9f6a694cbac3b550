"""Search and delete over the vector index: `POST /v1/search`, `DELETE /v1/documents/{id}`.

A query is normalised as preprocess normalises documents, embedded by the same endpoint
(`invoke_inline`), checked against the index's dimension, and answered by QueryVectors. A hit's
`score` is 1 - its cosine distance, i.e. the cosine similarity of query and chunk. Deleting a
document removes the keys its record counts, then the record, so a repeat (or a retry after a
lost answer) finds nothing and says so (`found: false`).
"""

from __future__ import annotations

import struct
from typing import Any

from tandem_common.adapters.endpoint import invoke_inline
from tandem_common.contracts import VECTOR_FILTER_KEYS, VECTOR_TEXT_KEY
from tandem_common.errors import EndpointError, IndexingDisabled, InvalidRequest
from tandem_common.models import (
    DocumentDeleted,
    SearchFilter,
    SearchHit,
    SearchRequest,
    SearchResponse,
)
from tandem_common.settings import Settings
from tandem_common.text.normalise import normalise_text
from tandem_common.usecases.indexing import Indexer

DISABLED = (
    "this stack was deployed with VectorIndexing=false: there is no vector index "
    "(deploy with VectorIndexing=true to index and search)"
)


def index_filter(flt: SearchFilter | None) -> dict[str, Any] | None:
    """The API's filter as an S3 Vectors metadata filter (`$in` for a list, `$and` for both)."""
    clauses: list[dict[str, Any]] = []
    for key in VECTOR_FILTER_KEYS:
        value = getattr(flt, key, None) if flt is not None else None
        if value is None:
            continue
        values = [value] if isinstance(value, str) else list(dict.fromkeys(value))
        clauses.append({key: values[0]} if len(values) == 1 else {key: {"$in": values}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


class SearchService:
    def __init__(self, settings: Settings, indexer: Indexer | None) -> None:
        self.settings = settings
        self.indexer = indexer

    def _require(self) -> Indexer:
        if self.indexer is None:
            raise IndexingDisabled(DISABLED)
        return self.indexer

    def search(self, request: SearchRequest) -> SearchResponse:
        indexer = self._require()
        text = normalise_text(request.query)
        if not text.strip():
            raise InvalidRequest("query is empty after normalisation", param="query")
        embedded = invoke_inline(self.settings.resources.endpoint_name, [text])
        dims = indexer.index.dimension()
        if embedded.dims != dims:
            raise EndpointError(
                f"the model endpoint returned {embedded.dims}-dimensional vectors but the "
                f"vector index holds {dims}-dimensional vectors: the stack's model settings "
                "are wrong"
            )
        query = struct.unpack(f"<{dims}f", embedded.rows[0])
        hits = indexer.index.query(query, request.top_k, index_filter(request.filter))
        results = []
        for hit in hits:
            meta = hit.get("metadata") or {}
            results.append(
                SearchHit(
                    document_id=str(meta.get("document_id", "")),
                    chunk_index=int(meta.get("chunk_index", 0)),
                    score=1.0 - float(hit.get("distance", 1.0)),
                    text=str(meta.get(VECTOR_TEXT_KEY, "")),
                    job_id=str(meta.get("job_id", "")),
                )
            )
        return SearchResponse(model=self.settings.model.name, results=results)

    def delete_document(self, document_id: str) -> DocumentDeleted:
        """Every key of the document's recorded version, then the record (a record always
        counts at least one chunk, so none deleted means the index did not hold it)."""
        vectors = self._require().unindex({document_id: 0})
        return DocumentDeleted(document_id=document_id, found=vectors > 0, vectors=vectors)
