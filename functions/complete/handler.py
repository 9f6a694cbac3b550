"""Complete (EndpointMode=async): SageMaker's notifications resume the batches' Map tasks, and a
schedule sweeps the tries still pending (their heartbeat; docs/RELIABILITY.md, "Asynchronous
inference").

Events: SNS (the endpoint's success and error topics) -> `SendTaskSuccess` or
`SendTaskFailure` per notification; the schedule's `{"sweep": true}` -> the sweep. Both return
the counts of what was done: `{"succeeded", "failed", "duplicate", "unknown", "checked",
"heartbeats", "lost"}`.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from tandem_common.adapters.inferences import InferenceStore
from tandem_common.adapters.storage import Storage
from tandem_common.adapters.workflows import TaskCallbacks
from tandem_common.observability import logger, traced
from tandem_common.settings import get_settings
from tandem_common.usecases.async_inference import complete, parse_notification, sweep

settings = get_settings()  # validated at cold start

inferences = InferenceStore(settings.resources.inference_table)  # client created on first use


@logger.inject_lambda_context(clear_state=True)
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" in event:
        # each record's `Sns.Message` read as is: Powertools' SNSEvent would import every event
        # data class it has at cold start (tests/integration/test_cold_imports.py)
        notes = [parse_notification(r["Sns"]["Message"]) for r in event["Records"]]
        report = complete(notes, inferences, TaskCallbacks(), Storage())
    else:
        report = sweep(
            inferences,
            TaskCallbacks(),
            Storage(),
            settings.async_inference.async_notification_grace_s,
            time_left_ms=context.get_remaining_time_in_millis,
        )
    done = {k: v for k, v in report.model_dump().items() if v}
    if done:  # an idle sweep (nothing pending) says nothing
        logger.info("async inferences", extra=done)
    return report.model_dump()
