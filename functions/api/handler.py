"""HTTP API (payload v2): jobs, uploads, embeddings, OpenAPI at /openapi.json, Swagger UI at /docs.

Routes and error mapping: `tandem_common.api` (app.py, routes.py).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from tandem_common.api.app import handle
from tandem_common.observability import logger, traced
from tandem_common.settings import get_settings

settings = get_settings()  # validated at cold start


@logger.inject_lambda_context(clear_state=True)
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)
