"""The OpenAI-compatible routes (/v1/embeddings, /v1/models) through the api handler and its
events/api files, with a stand-in sagemaker-runtime that answers as the endpoint's inline path.

The real clients (openai SDK, langchain-openai) against the real model are in
tests/integration/local_cloud/test_local_openai.py.
"""

from __future__ import annotations

import base64
import io
import json
import math
import struct
from typing import Any

import pytest
from tandem_common.adapters import aws
from tandem_common.settings import get_settings

DIMS = 384


def fake_vector(text: str, dims: int = DIMS) -> list[float]:
    """A deterministic, L2-normalised vector per text, exact in float32."""
    raw = [float((len(text) + 3 * k) % 17 - 8) for k in range(dims)]
    norm = math.sqrt(sum(x * x for x in raw))
    return list(struct.unpack(f"<{dims}f", struct.pack(f"<{dims}f", *(x / norm for x in raw))))


class FakeRuntime:
    """sagemaker-runtime stand-in answering like the endpoint's inline contract (a fake model:
    `fake_vector`), in the encoding asked for."""

    def __init__(self, error_code: str | None = None, dims: int = DIMS) -> None:
        self.calls: list[dict[str, Any]] = []
        self.error_code = error_code
        self.dims = dims

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        self.calls.append(kwargs)
        if self.error_code:
            raise ClientError(
                {"Error": {"Code": self.error_code, "Message": "x"}}, "InvokeEndpoint"
            )
        request = json.loads(kwargs["Body"])
        vectors = [fake_vector(t, self.dims) for t in request["inputs"]]
        encoding = request.get("encoding", "float")
        if encoding == "base64-f32":
            outputs: list[Any] = [
                base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() for v in vectors
            ]
        else:
            assert encoding == "float"
            outputs = vectors
        out = {"outputs": outputs, "model": "all-MiniLM-L6-v2", "dims": self.dims}
        return {"Body": io.BytesIO(json.dumps({**out, "encoding": encoding}).encode())}


@pytest.fixture
def runtime() -> FakeRuntime:
    fake = FakeRuntime()
    aws.set_client("sagemaker-runtime", fake)
    return fake


def embeddings_event(event: Any, body: Any) -> dict[str, Any]:
    e: dict[str, Any] = event("api", "embeddings")
    e["body"] = body if isinstance(body, str) else json.dumps(body)
    return e


def model_event(event: Any, model_id: str) -> dict[str, Any]:
    e: dict[str, Any] = event("api", "get_model")
    e["rawPath"] = e["requestContext"]["http"]["path"] = f"/v1/models/{model_id}"
    return e


def decode_f32(text: str) -> list[float]:
    raw = base64.b64decode(text)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def assert_openai_error(body: Any, param: str | None, code: str) -> str:
    """OpenAI's error shape: message, type, param, code and nothing else."""
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, body
    assert error["param"] == param and error["code"] == code, body
    assert error["type"] == "invalid_request_error" and error["message"], body
    message: str = error["message"]
    return message


def set_model_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()


# --- embeddings: what a client sends ----------------------------------------------------------


def test_base64_is_the_little_endian_float32_bytes_as_the_sdk_default_asks(
    api: Any, event: Any, runtime: FakeRuntime
) -> None:
    # Given the openai SDK's default request (encoding_format "base64")
    status, body = api(event("api", "embeddings_openai_sdk"))
    # Then each embedding is the base64 of the float32 vector, exactly
    assert status == 200, body
    assert body["object"] == "list" and body["model"] == "all-MiniLM-L6-v2"
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert all(d["object"] == "embedding" for d in body["data"])
    got = [decode_f32(d["embedding"]) for d in body["data"]]
    assert got == [fake_vector("hello world"), fake_vector("semantic search")]
    # "hello world" = 2 tokens + 2 specials; "semantic search" = 2 + 2
    assert body["usage"] == {"prompt_tokens": 8, "total_tokens": 8}
    assert runtime.calls[0]["EndpointName"] == "tandem-embed"
    sent = json.loads(runtime.calls[0]["Body"])
    assert sent == {"inputs": ["hello world", "semantic search"], "encoding": "base64-f32"}


@pytest.mark.parametrize("encoding_format", ["float", None])
def test_float_lists_when_asked_or_unset(
    api: Any, event: Any, runtime: FakeRuntime, encoding_format: str | None
) -> None:
    status, body = api(
        embeddings_event(
            event,
            {
                "input": ["hello world"],
                "model": "all-MiniLM-L6-v2",
                "encoding_format": encoding_format,
            },
        )
    )
    assert status == 200, body
    assert body["data"][0]["embedding"] == fake_vector("hello world")


def test_one_string_input_is_one_embedding(api: Any, event: Any, runtime: FakeRuntime) -> None:
    status, body = api(
        embeddings_event(event, {"input": "hello world", "model": "all-MiniLM-L6-v2"})
    )
    assert status == 200, body
    assert len(body["data"]) == 1 and body["data"][0]["index"] == 0
    assert json.loads(runtime.calls[0]["Body"])["inputs"] == ["hello world"]


def test_user_and_unknown_fields_are_ignored(api: Any, event: Any, runtime: FakeRuntime) -> None:
    status, body = api(
        embeddings_event(
            event,
            {"input": "x y", "model": "all-MiniLM-L6-v2", "user": "u-1", "future_field": {"a": 1}},
        )
    )
    assert status == 200, body


def test_model_may_be_left_out(api: Any, event: Any, runtime: FakeRuntime) -> None:
    status, body = api(embeddings_event(event, {"input": "hello"}))
    assert status == 200 and body["model"] == "all-MiniLM-L6-v2"


def test_an_alias_answers_as_the_served_model(
    api: Any, event: Any, runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_model_env(monkeypatch, MODEL_ALIASES="sentence-transformers/all-MiniLM-L6-v2,minilm")
    for alias in ("sentence-transformers/all-MiniLM-L6-v2", "minilm"):
        status, body = api(embeddings_event(event, {"input": "hello", "model": alias}))
        assert status == 200 and body["model"] == "all-MiniLM-L6-v2", body


def test_another_model_is_openais_404_model_not_found(
    api: Any, event: Any, runtime: FakeRuntime
) -> None:
    status, body = api(event("api", "embeddings_unknown_model"))
    assert status == 404
    message = assert_openai_error(body, "model", "model_not_found")
    assert "text-embedding-3-small" in message and "all-MiniLM-L6-v2" in message
    assert runtime.calls == []


def test_dimensions_equal_to_the_models_are_accepted(
    api: Any, event: Any, runtime: FakeRuntime
) -> None:
    status, body = api(embeddings_event(event, {"input": "hello", "dimensions": DIMS}))
    assert status == 200 and len(body["data"][0]["embedding"]) == DIMS


@pytest.mark.parametrize("dimensions", [256, 385, 0, -1, True, "384", 3.5])
def test_other_dimensions_are_a_400_naming_dimensions(
    api: Any, event: Any, runtime: FakeRuntime, dimensions: Any
) -> None:
    status, body = api(embeddings_event(event, {"input": "hello", "dimensions": dimensions}))
    assert status == 400, body
    assert_openai_error(body, "dimensions", "invalid_request")
    assert runtime.calls == []


def test_a_truncatable_model_serves_shorter_vectors_renormalised(
    api: Any, event: Any, runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a model whose settings declare it can be shortened (Matryoshka)
    set_model_env(monkeypatch, MODEL_TRUNCATABLE="true")
    # When 64 dimensions are asked for, as floats and as base64
    for fmt in ("float", "base64"):
        body_in = {"input": ["hello world"], "dimensions": 64, "encoding_format": fmt}
        status, body = api(embeddings_event(event, body_in))
        assert status == 200, body
        vec = body["data"][0]["embedding"]
        vec = decode_f32(vec) if fmt == "base64" else vec
        # Then each is the full vector's first 64 components, at unit length again
        full = fake_vector("hello world")[:64]
        scale = math.sqrt(sum(x * x for x in full))
        assert len(vec) == 64
        assert vec == pytest.approx([x / scale for x in full], rel=1e-6)
        assert math.sqrt(sum(x * x for x in vec)) == pytest.approx(1.0, rel=1e-6)
    # And more than the model has is still refused
    status, body = api(embeddings_event(event, {"input": "hello", "dimensions": DIMS + 1}))
    assert status == 400 and body["error"]["param"] == "dimensions"


# --- embeddings: bad input, each a 400 that says why ------------------------------------------


@pytest.mark.parametrize(
    ("name", "param", "words"),
    [
        ("embeddings_empty_string", "input", "input[1] must not be empty"),
        ("embeddings_empty_input", "input", "empty list"),
        ("embeddings_too_many_inputs", "input", "at most 256"),
        ("embeddings_token_ids", "input", "check_embedding_ctx_length=False"),
        ("embeddings_dimensions_refused", "dimensions", "384 (it cannot be shortened)"),
    ],
)
def test_bad_request_events_are_a_400_that_says_why(
    api: Any, event: Any, runtime: FakeRuntime, name: str, param: str, words: str
) -> None:
    status, body = api(event("api", name))
    assert status == 400
    assert words in assert_openai_error(body, param, "invalid_request")
    assert runtime.calls == []


@pytest.mark.parametrize(
    "value",
    [[[15339, 1917]], [15339, 1917], ["hello", [1, 2]]],
    ids=["list-of-token-lists", "token-list", "mixed"],
)
def test_token_arrays_are_a_400_that_says_why(
    api: Any, event: Any, runtime: FakeRuntime, value: Any
) -> None:
    status, body = api(embeddings_event(event, {"input": value, "model": "all-MiniLM-L6-v2"}))
    assert status == 400
    message = assert_openai_error(body, "input", "invalid_request")
    assert "token" in message.lower() and "send text" in message
    assert runtime.calls == []


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"input": []}, "input", "empty list"),
        ({"input": "   "}, "input", "empty"),
        ({"input": ["a", 3]}, "input", "input[1]"),
        ({"input": 7}, "input", "string or a list"),
        ({"model": "all-MiniLM-L6-v2"}, "input", "Missing required parameter"),
        ({"input": "a", "encoding_format": "float16"}, "encoding_format", "'float' or 'base64'"),
        ({"input": "a", "model": 3}, "model", "Expected `str | null`, got `int`"),
        (["a"], None, "JSON object"),
    ],
)
def test_bad_fields_are_a_400_in_openai_shape(
    api: Any, event: Any, runtime: FakeRuntime, body: Any, param: str | None, words: str
) -> None:
    status, out = api(embeddings_event(event, body))
    assert status == 400, out
    assert words in assert_openai_error(out, param, "invalid_request")


def test_oversized_body_is_a_413_in_openai_shape(api: Any, event: Any) -> None:
    status, body = api(event("api", "embeddings_oversized"))
    assert status == 413
    assert_openai_error(body, None, "payload_too_large")


@pytest.mark.parametrize("raw", ['{"input": ', "[" * 50_000 + "]" * 50_000])
def test_malformed_json_is_a_400_in_openai_shape(api: Any, event: Any, raw: str) -> None:
    status, body = api(embeddings_event(event, raw))
    assert status == 400
    assert_openai_error(body, None, "malformed_json")


@pytest.mark.parametrize(("code", "status"), [("ThrottlingException", 503), ("ModelError", 502)])
def test_endpoint_errors_are_server_errors_in_openai_shape(
    api: Any, event: Any, code: str, status: int
) -> None:
    aws.set_client("sagemaker-runtime", FakeRuntime(code))
    got, body = api(event("api", "embeddings"))
    assert got == status
    assert body["error"]["type"] == "server_error"
    assert body["error"]["code"] in {"endpoint_unavailable", "endpoint_error"}


def test_vectors_of_another_size_than_the_settings_say_are_a_502(api: Any, event: Any) -> None:
    aws.set_client("sagemaker-runtime", FakeRuntime(dims=768))
    status, body = api(event("api", "embeddings"))
    assert status == 502 and "MODEL_DIMENSIONS" in body["error"]["message"]


@pytest.mark.parametrize(
    "answer",
    [
        {"oops": True},
        {"outputs": ["not base64!"], "dims": DIMS},
        {"outputs": [base64.b64encode(b"\0" * 12).decode()], "dims": DIMS},
        {"outputs": [[0.1, 0.2]], "dims": 2},
        [],
    ],
)
def test_a_malformed_endpoint_answer_is_a_502(api: Any, event: Any, answer: Any) -> None:
    class Malformed(FakeRuntime):
        def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
            return {"Body": io.BytesIO(json.dumps(answer).encode())}

    aws.set_client("sagemaker-runtime", Malformed())
    status, body = api(embeddings_event(event, {"input": "hello"}))
    assert status == 502 and body["error"]["code"] == "endpoint_error", body


# --- models -----------------------------------------------------------------------------------


def test_list_models_names_the_served_model(api: Any, event: Any) -> None:
    status, body = api(event("api", "list_models"))
    assert status == 200
    assert body == {
        "object": "list",
        "data": [{"id": "all-MiniLM-L6-v2", "object": "model", "created": 0, "owned_by": "tandem"}],
    }


def test_retrieve_model_by_name_and_by_percent_encoded_alias(
    api: Any, event: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, body = api(event("api", "get_model"))
    assert status == 200 and body["id"] == "all-MiniLM-L6-v2" and body["object"] == "model"
    set_model_env(monkeypatch, MODEL_ALIASES="sentence-transformers/all-MiniLM-L6-v2")
    status, body = api(model_event(event, "sentence-transformers%2Fall-MiniLM-L6-v2"))
    assert status == 200 and body["id"] == "all-MiniLM-L6-v2"


def test_an_overlong_model_id_is_a_400_naming_it(api: Any, event: Any) -> None:
    status, body = api(model_event(event, "m" * 257))
    assert status == 400
    assert "length <= 256" in assert_openai_error(body, "model_id", "invalid_request")


def test_retrieve_unknown_model_is_openais_404(api: Any, event: Any) -> None:
    status, body = api(event("api", "get_model_unknown"))
    assert status == 404
    assert "text-embedding-3-small" in assert_openai_error(body, "model", "model_not_found")


def test_served_model_comes_from_the_settings(
    api: Any, event: Any, runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_model_env(monkeypatch, MODEL_NAME="my-minilm")
    assert api(event("api", "list_models"))[1]["data"][0]["id"] == "my-minilm"
    status, body = api(embeddings_event(event, {"input": "hi", "model": "my-minilm"}))
    assert status == 200 and body["model"] == "my-minilm"
    assert api(event("api", "embeddings_openai_sdk"))[0] == 404  # asks for all-MiniLM-L6-v2


# --- the rest of the API keeps its own error shape; the schema says which is which -------------


def test_other_routes_keep_their_error_shape(api: Any, event: Any) -> None:
    status, body = api(event("api", "get_job_unknown"))
    assert status == 404 and body == {
        "error": {"code": "not_found", "message": body["error"]["message"]}
    }
    status, body = api(event("api", "create_job_missing_field"))
    assert status == 422 and set(body["error"]) == {"code", "message"}


def test_openapi_declares_the_openai_routes_and_their_error_shape(api: Any, event: Any) -> None:
    status, spec = api(event("api", "openapi"))
    assert status == 200
    paths = spec["paths"]
    assert {"/v1/embeddings", "/v1/models", "/v1/models/{model_id}"} <= set(paths)

    def error_refs(path: str, method: str) -> dict[str, str]:
        responses = paths[path][method]["responses"]
        return {
            code: r["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
            for code, r in responses.items()
            if int(code) >= 400
        }

    assert error_refs("/v1/embeddings", "post") == {
        code: "OpenAIErrorBody" for code in ("400", "404", "413", "500", "502", "503")
    }
    assert set(error_refs("/v1/models/{model_id}", "get").values()) == {"OpenAIErrorBody"}
    assert set(error_refs("/v1/jobs", "post").values()) == {"ErrorBody"}
    schemas = spec["components"]["schemas"]
    assert set(schemas["OpenAIErrorInfo"]["properties"]) == {"message", "type", "param", "code"}
    embedding = schemas["EmbeddingItem"]["properties"]["embedding"]
    assert {s.get("type") for s in embedding["anyOf"]} == {"array", "string"}


def test_an_async_only_stack_says_embeddings_need_a_real_time_endpoint(
    api: Any, event: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # EndpointMode=async without QueryEndpointName: the api's ENDPOINT_NAME is empty
    monkeypatch.setenv("ENDPOINT_NAME", "")
    get_settings.cache_clear()
    status, body = api(event("api", "embeddings"))
    assert status == 503, body
    assert (
        body["error"]["type"] == "server_error" and body["error"]["code"] == "endpoint_unavailable"
    )
    assert "QueryEndpointName" in body["error"]["message"]
