"""GPU backend: transformers BERT, same mean pooling + L2 norm as sentence-transformers.

Options (`TorchOptions`, flags `--torch-*`): fp16/bf16/fp32; attention through
`torch.nn.functional.scaled_dot_product_attention` (transformers' `sdpa`, the default) or the
eager matmul-softmax; optional `torch.compile` (`reduce-overhead` = CUDA graphs); static shapes
(rows padded to a power of two, width to a batcher bucket edge, so a compiled or graphed model
sees a bounded set of shapes); pinned host buffers and non-blocking copies on CUDA. Tokens come
from the server's tokenizer pool (`Tokens`), so this backend never tokenizes in its forward pass.

torch and transformers are imported here only, so the CPU image never needs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tandem_endpoint.backends import BackendOptions
from tandem_endpoint.backends.model_files import max_seq_length, model_name, read_config
from tandem_endpoint.backends.tokens import Tokens, WordPieceTokenizer

DTYPES = ("auto", "fp16", "bf16", "fp32")
ATTENTIONS = ("sdpa", "eager")
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")


class TorchBackend:
    def __init__(self, model_dir: str, options: BackendOptions | None = None) -> None:
        import torch
        from transformers import AutoModel

        options = options or BackendOptions()
        opts = options.torch
        if opts.dtype not in DTYPES or opts.attention not in ATTENTIONS:
            raise ValueError(f"torch dtype {opts.dtype!r} / attention {opts.attention!r}")
        if opts.compile not in COMPILE_MODES:
            raise ValueError(f"torch compile mode {opts.compile!r}; expected {COMPILE_MODES}")
        config = read_config(model_dir)
        self._torch = torch
        device = opts.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.on_cuda = self.device.type == "cuda"
        dtype_name = opts.dtype if opts.dtype != "auto" else ("fp16" if self.on_cuda else "fp32")
        self.dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[
            dtype_name
        ]
        self.dims = int(config["hidden_size"])
        self.name = model_name(model_dir, config)
        self.max_seq_length = max_seq_length(model_dir, config)
        self.options = opts
        self.description = (
            f"torch {torch.__version__} {self.device.type} {dtype_name} {opts.attention}"
            f" compile={opts.compile} static_shapes={opts.static_shapes}"
        )
        self.tokenizer = WordPieceTokenizer(model_dir, self.max_seq_length, options.ascii_fast_path)
        model = AutoModel.from_pretrained(
            model_dir, dtype=self.dtype, attn_implementation=opts.attention
        )
        self.model: Any = model.to(self.device).eval()
        if opts.compile != "none":
            self.model = torch.compile(
                self.model,
                mode=None if opts.compile == "default" else opts.compile,
                dynamic=False if opts.static_shapes else None,
            )
        self.widths = sorted({w for w in options.widths if w < self.max_seq_length})
        self.widths.append(self.max_seq_length)
        self.pin = opts.pin_memory and self.on_cuda

    def tokenize(self, texts: Sequence[str]) -> Tokens:
        return self.tokenizer.tokenize(texts)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.forward(self.tokenize(texts))

    def padded_shape(self, rows: int, width: int) -> tuple[int, int]:
        """The (rows, width) a batch runs at: its own, or the next static shape."""
        if not self.options.static_shapes:
            return rows, width
        return 1 << (rows - 1).bit_length(), next(w for w in self.widths if w >= width)

    def forward(self, tokens: Tokens) -> np.ndarray:
        torch = self._torch
        n = len(tokens)
        if n == 0:
            return np.zeros((0, self.dims), dtype=np.float32)
        rows, width = self.padded_shape(n, tokens.width)
        ids, lengths = tokens.ids, tokens.lengths
        if (rows, width) != ids.shape:
            ids = np.zeros((rows, width), np.int32)
            ids[:n, : tokens.width] = tokens.ids
            lengths = np.ones(rows, np.int32)  # padded rows attend to one pad token, then drop
            lengths[:n] = tokens.lengths
        ids_t, lengths_t = self._to_device(ids), self._to_device(lengths)
        with torch.inference_mode():
            positions = torch.arange(width, device=self.device)
            mask = (positions[None, :] < lengths_t[:, None]).to(torch.int64)
            hidden = self.model(input_ids=ids_t.to(torch.int64), attention_mask=mask)
            hidden = hidden.last_hidden_state[:n].float()
            mask_f = mask[:n, :, None].float()
            pooled = (hidden * mask_f).sum(dim=1) / mask_f.sum(dim=1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            if not self.on_cuda:
                return pooled.numpy().astype(np.float32, copy=False)
            host = torch.empty(pooled.shape, dtype=torch.float32, pin_memory=self.pin)
            host.copy_(pooled, non_blocking=self.pin)
            torch.cuda.current_stream(self.device).synchronize()
            return host.numpy()

    def _to_device(self, array: np.ndarray) -> Any:
        tensor = self._torch.from_numpy(array)
        if not self.on_cuda:
            return tensor
        if self.pin:
            tensor = tensor.pin_memory()
        return tensor.to(self.device, non_blocking=self.pin)
