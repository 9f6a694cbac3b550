"""Use-cases: what a function does, written against the adapters (never their clients).

One module per step or service: `intake`, `ingest`, `preprocess`, `deliver`, `failure`,
`watchdog`, `retry`, `notifications`, `webhook_delivery`.
"""
