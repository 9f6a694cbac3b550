"""The real OpenAI clients against the local cloud's `/v1/embeddings` and `/v1/models`, with the
real model behind them: the `openai` SDK with its defaults (it asks for base64), float, base64,
one string, dimensions, errors as the SDK's typed exceptions; LangChain's `OpenAIEmbeddings`.

Vectors are checked against the committed sentence-transformers outputs
(tests/fixtures/reference). Every client has `max_retries=0`: a retry would hide a bug.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
from langchain_openai import OpenAIEmbeddings

pytestmark = pytest.mark.integration

REFERENCE = Path(__file__).resolve().parents[2] / "fixtures" / "reference"
MODEL = "all-MiniLM-L6-v2"
# A spread of the reference texts: short, long (past the 256-token window), scripts, emoji, code,
# zero-width characters, CRLF. Few enough per request for a busy 2-core machine.
SAMPLE = [3, 4, 5, 8, 10, 14, 19, 20, 21, 29, 67, 75, 78, 110, 111, 113]


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    texts = json.loads((REFERENCE / "texts.json").read_text(encoding="utf-8"))
    vectors = np.load(REFERENCE / "embeddings.npy")
    return {texts[i]: vectors[i] for i in SAMPLE}


@pytest.fixture(scope="module")
def client(cloud: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{cloud.api_url}/v1", api_key="x", max_retries=0, timeout=120)


def assert_matches(reference: dict[str, np.ndarray], texts: list[str], got: Any) -> None:
    vectors = np.asarray(got, dtype=np.float32)
    assert vectors.shape == (len(texts), 384)
    expected = np.stack([reference[t] for t in texts])
    cosine = (vectors * expected).sum(axis=1) / np.linalg.norm(vectors, axis=1)
    worst = int(np.argmin(cosine))
    assert cosine.min() >= 0.999, f"{texts[worst][:40]!r}: cosine {cosine[worst]}"


def vectors_of(response: Any) -> list[Any]:
    assert [d.index for d in response.data] == list(range(len(response.data)))
    return [d.embedding for d in response.data]


def test_the_sdk_defaults_work_and_ask_for_base64(
    client: openai.OpenAI, reference: dict[str, np.ndarray]
) -> None:
    # Given the call, as a new user writes it
    texts = list(reference)
    raw = client.embeddings.with_raw_response.create(model=MODEL, input=texts)
    # Then the wire carries base64 (the SDK's default), which the SDK decodes to the right vectors
    wire = raw.http_response.json()
    assert all(isinstance(d["embedding"], str) for d in wire["data"])
    # the api key travels as a bearer token: what a JwtIssuer stack's authorizer reads (README)
    assert raw.http_response.request.headers["authorization"] == "Bearer x"
    response = raw.parse()
    assert response.model == MODEL and response.usage.prompt_tokens > 0
    assert_matches(reference, texts, vectors_of(response))


def test_float_and_base64_are_the_same_vectors(
    client: openai.OpenAI, reference: dict[str, np.ndarray]
) -> None:
    texts = list(reference)[:8]
    floats = vectors_of(client.embeddings.create(model=MODEL, input=texts, encoding_format="float"))
    assert all(isinstance(v, list) for v in floats)
    assert_matches(reference, texts, floats)
    # Asked for explicitly, the SDK leaves base64 as it came: little-endian float32 bytes
    encoded = vectors_of(
        client.embeddings.create(model=MODEL, input=texts, encoding_format="base64")
    )
    decoded = np.stack([np.frombuffer(base64.b64decode(s), dtype="<f4") for s in encoded])
    np.testing.assert_array_equal(decoded, np.asarray(floats, dtype=np.float32))


def test_one_string_is_one_vector(client: openai.OpenAI, reference: dict[str, np.ndarray]) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    response = client.embeddings.create(model=MODEL, input=text)
    assert len(response.data) == 1
    assert_matches(reference, [text], vectors_of(response))


def test_dimensions_of_the_model_are_accepted_others_are_a_bad_request(
    client: openai.OpenAI,
) -> None:
    response = client.embeddings.create(model=MODEL, input="hello", dimensions=384)
    assert len(response.data[0].embedding) == 384
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model=MODEL, input="hello", dimensions=256)
    assert refused.value.status_code == 400 and refused.value.param == "dimensions"
    assert "dimensions" in str(refused.value) and "384" in str(refused.value)


def test_the_alias_is_the_same_model(client: openai.OpenAI) -> None:
    alias = f"sentence-transformers/{MODEL}"  # MODEL_ALIASES in template.yaml
    response = client.embeddings.create(model=alias, input="hello")
    assert response.model == MODEL


@pytest.mark.parametrize(
    ("kwargs", "error", "param", "words"),
    [
        ({"model": "text-embedding-3-small"}, openai.NotFoundError, "model", "does not exist"),
        ({"input": [[15339, 1917]]}, openai.BadRequestError, "input", "send text"),
        ({"input": [101, 7592, 102]}, openai.BadRequestError, "input", "send text"),
        ({"input": ["hello", "", "x"]}, openai.BadRequestError, "input", "input[1]"),
    ],
    ids=["unknown-model", "token-lists", "token-list", "empty-string"],
)
def test_refusals_are_the_sdks_typed_errors_with_the_message(
    client: openai.OpenAI, kwargs: dict[str, Any], error: type[Exception], param: str, words: str
) -> None:
    args: dict[str, Any] = {"model": MODEL, "input": "hello", **kwargs}
    with pytest.raises(error) as refused:
        client.embeddings.create(**args)
    exc: Any = refused.value
    assert exc.param == param and words in str(exc), exc.body
    assert exc.type == "invalid_request_error"
    if error is openai.NotFoundError:
        assert exc.code == "model_not_found"


def test_an_oversized_body_is_a_413_with_the_message(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as refused:
        client.embeddings.create(model=MODEL, input=["x " * 300_000, "y " * 300_000])
    assert refused.value.status_code == 413 and refused.value.code == "payload_too_large"
    assert "larger than" in str(refused.value)


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [MODEL]
    model = client.models.retrieve(MODEL)
    assert model.id == MODEL and model.object == "model" and model.owned_by == "tandem"
    # the SDK percent-encodes the "/" of the alias; it answers as the model it names
    assert client.models.retrieve(f"sentence-transformers/{MODEL}").id == MODEL
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("text-embedding-3-small")
    assert missing.value.code == "model_not_found"


def test_langchain_embed_documents_and_query(cloud: Any, reference: dict[str, np.ndarray]) -> None:
    # check_embedding_ctx_length=False: else LangChain tokenizes with tiktoken (a download) and
    # sends OpenAI token ids, which this model cannot read (README, "Use it")
    embeddings = OpenAIEmbeddings(
        model=MODEL,
        base_url=f"{cloud.api_url}/v1",
        api_key="x",  # type: ignore[arg-type]  # pydantic SecretStr field, a str is what users pass
        check_embedding_ctx_length=False,
        max_retries=0,
        chunk_size=8,  # two requests for the sample: LangChain's own batching
    )
    texts = list(reference)
    assert_matches(reference, texts, embeddings.embed_documents(texts))
    query = "Hello, world!"
    assert_matches(reference, [query], [embeddings.embed_query(query)])
