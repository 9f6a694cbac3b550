"""AWS and network adapters: the only code that touches boto3 or the network.

`aws` (cached clients), `jobs` (the jobs table), `storage` (the data bucket), `events`
(EventBridge), `webhooks` (HTTP delivery of signed webhooks).
"""
