"""The CLI shares the pipeline's contracts by import, not by copy: the job id it predicts for an
upload is the one the ingest function gives the object's S3 event."""

from __future__ import annotations

from conftest import BUCKET
from tandem_common.usecases.ingest import submission_from_object_created

from tandem import submission


def _object_created(bucket: str, key: str, version: str | None, etag: str) -> dict:
    obj = {"key": key, "size": 5, "etag": etag, "sequencer": "0A1B"}
    if version is not None:
        obj["version-id"] = version
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-12-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": obj,
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "reason": "PutObject",
        },
    }


def test_cli_predicts_the_s3_job_id_the_ingest_function_assigns() -> None:
    # `tandem submit` predicts the job an upload makes from the PUT's answer (version, ETag);
    # unversioned ("null") and versioned objects both hash as ingest does
    for version in ("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY", "null", None):
        event = _object_created(BUCKET, "inbox/a b.txt", version, "9b2cf535f27731c9")
        made = submission_from_object_created(event)
        assert made is not None
        predicted = submission.predicted_job_id(
            f"s3://{BUCKET}/inbox/a b.txt", version, '"9b2cf535f27731c9"'
        )
        assert predicted == made.job_id
