"""Submit step (EndpointMode=async; `lambda:invoke.waitForTaskToken` from each Map child): one
batch -> `InvokeEndpointAsync`, the task token kept under the try's InferenceId.

Event: `{"job_id", "index", "request": {"inputs_uri", "outputs_uri"}, "task_token", "retry"}` ->
`{"inference_id", "input_location", "output_location", "failure_location"}` (discarded: the
task waits for the complete function's callback). Errors: EndpointThrottled and
EndpointUnavailable (retried by the state machine), EndpointRejected (the batch's failure).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from tandem_common.adapters.inferences import InferenceStore
from tandem_common.adapters.storage import Storage
from tandem_common.models import SubmitInput
from tandem_common.observability import bind_job, logger, traced
from tandem_common.settings import get_settings
from tandem_common.usecases.async_inference import submit_batch

settings = get_settings()  # validated at cold start

inferences = InferenceStore(settings.resources.inference_table)  # client created on first use


@logger.inject_lambda_context(clear_state=True)
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = SubmitInput.model_validate(event)
    bind_job(request.job_id)
    result = submit_batch(request, settings, Storage(), inferences)
    logger.info(
        "batch queued",
        extra={"batch": request.index, "inference_id": result.inference_id},
    )
    return result.model_dump()
