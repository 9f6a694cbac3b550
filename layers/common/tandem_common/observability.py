"""The shared Powertools Logger and Tracer.

The Logger is cheap to build. The Tracer (X-Ray SDK import ≈ 300 ms) is built on first
use via `tracer()`, so a cold import of a handler does not pay for it. Logs never carry document
text or vectors: log ids and counts only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache, wraps
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

# The service name comes from POWERTOOLS_SERVICE_NAME.
logger = Logger()

__all__ = ["logger", "traced", "tracer"]

Handler = TypeVar("Handler", bound=Callable[..., Any])


@lru_cache(maxsize=1)
def tracer() -> Tracer:
    from aws_lambda_powertools import Tracer

    return Tracer(service="tandem")


def tracing_enabled() -> bool:
    """Powertools' own switch, plus: only inside a real Lambda (not tests, not the local cloud,
    not `sam local`), where the X-Ray daemon exists. Even a disabled Tracer imports the SDK."""
    disabled = os.getenv("POWERTOOLS_TRACE_DISABLED", "false").lower() in {"1", "true"}
    in_lambda = bool(os.getenv("AWS_LAMBDA_FUNCTION_NAME")) and not os.getenv("AWS_SAM_LOCAL")
    return in_lambda and not disabled


def traced(handler: Handler) -> Handler:
    """Like `Tracer.capture_lambda_handler` (response not captured), but builds the Tracer
    on the first invocation instead of at import time, and only where tracing is on."""
    wrapped: list[Callable[..., Any]] = []

    @wraps(handler)
    def wrapper(event: Any, context: Any) -> Any:
        if not wrapped:
            enabled = tracing_enabled()
            wrapped.append(
                tracer().capture_lambda_handler(handler, capture_response=False)
                if enabled
                else handler
            )
        return wrapped[0](event, context)

    return wrapper  # type: ignore[return-value]
