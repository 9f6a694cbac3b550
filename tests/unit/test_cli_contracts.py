"""The CLI's copies of cross-boundary constants agree with the Lambda layer's."""

from __future__ import annotations

from tandem_common import jobs

from tandem import cli


def test_cli_job_namespace_matches_the_layer() -> None:
    # `tandem submit` predicts the job id an S3 upload will get; both must hash alike.
    assert cli.JOB_NAMESPACE == jobs.JOB_NAMESPACE


def test_cli_predicts_the_s3_job_id_the_ingest_function_assigns() -> None:
    expected = jobs.deterministic_job_id("s3", "bucket/inbox/a b.txt@v1")
    assert cli.s3_job_id("bucket", "inbox/a b.txt", "v1") == expected
