"""Tandem inference endpoint: SageMaker hosting protocol server with dynamic batching."""

import os

# The CPU backend runs one forward pass at a time beside the event loop. Multi-threaded BLAS
# spin-waits fight the event loop for cores (measured on 2 vCPUs: batched throughput fell 4x),
# so BLAS gets one thread unless the operator says otherwise. Must precede numpy's import.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# The server tokenizes on its own thread pool; each call should stay on its thread rather than
# also fan out over the tokenizers library's Rayon pool (see backends/tokens.py).
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"
