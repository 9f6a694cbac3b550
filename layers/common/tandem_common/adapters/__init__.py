"""AWS and network adapters: the only code that touches boto3 or the network.

`aws` (cached clients), `jobs` (the jobs table), `storage` (the data bucket), `events`
(EventBridge), `queues` (SQS sends with a delay), `webhooks` (Standard Webhooks signing and
one HTTP attempt to a validated address).
"""
