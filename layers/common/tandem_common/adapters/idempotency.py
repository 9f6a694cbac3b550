"""Powertools idempotency's DynamoDB persistence, on the cached DynamoDB client."""

from __future__ import annotations

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from tandem_common.adapters import aws


def persistence_layer(table_name: str) -> DynamoDBPersistenceLayer:
    """The idempotency table (pk `id`, TTL `expiration`) as Powertools' persistence layer."""
    return DynamoDBPersistenceLayer(table_name=table_name, boto3_client=aws.dynamodb())
