"""GPU backend: transformers BERT in fp16 on CUDA, same mean pooling + L2 norm as the reference.

torch and transformers are imported here only, so the CPU image never needs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tandem_endpoint.backends.model_files import max_seq_length, model_name, read_config


class TorchBackend:
    def __init__(self, model_dir: str, device: str = "cuda") -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        config = read_config(model_dir)
        self._torch = torch
        self.device = device
        self.dims = int(config["hidden_size"])
        self.name = model_name(model_dir, config)
        self.max_seq_length = max_seq_length(model_dir, config)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        self.model = AutoModel.from_pretrained(model_dir, dtype=dtype).to(device).eval()

    def _tokenize(self, texts: Sequence[str]) -> Any:
        return self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_seq_length,
            return_tensors="pt",
        )

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_seq_length)
        return [len(ids) for ids in enc["input_ids"]]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        batch = {k: v.to(self.device) for k, v in self._tokenize(texts).items()}
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state.float()
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.cpu().numpy().astype(np.float32)
