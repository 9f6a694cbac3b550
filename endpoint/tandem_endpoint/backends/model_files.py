"""Facts read from a sentence-transformers model directory, shared by the backends."""

from __future__ import annotations

import json
import os
from typing import Any


def read_config(model_dir: str) -> dict[str, Any]:
    with open(os.path.join(model_dir, "config.json")) as f:
        config: dict[str, Any] = json.load(f)
    return config


def max_seq_length(model_dir: str, config: dict[str, Any]) -> int:
    """sentence-transformers truncates at `max_seq_length` (256 for all-MiniLM-L6-v2)."""
    path = os.path.join(model_dir, "sentence_bert_config.json")
    if os.path.exists(path):
        with open(path) as f:
            return int(json.load(f)["max_seq_length"])
    return int(config.get("max_position_embeddings", 512))


def model_name(model_dir: str, config: dict[str, Any]) -> str:
    """Model id reported in responses: env TANDEM_MODEL_NAME, else derived from the files."""
    if os.environ.get("TANDEM_MODEL_NAME"):
        return os.environ["TANDEM_MODEL_NAME"]
    is_minilm_l6 = config.get("num_hidden_layers") == 6 and config.get("hidden_size") == 384
    if is_minilm_l6 and os.path.exists(os.path.join(model_dir, "sentence_bert_config.json")):
        return "all-MiniLM-L6-v2"
    return os.path.basename(os.path.normpath(model_dir))
