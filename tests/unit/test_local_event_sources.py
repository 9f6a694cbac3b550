"""The local S3 poller watches only the key prefixes the template's rules can match."""

from __future__ import annotations

from tandem.local.event_sources import key_prefixes


def test_prefix_rules_limit_the_listing_to_their_prefixes() -> None:
    rule = {"source": ["aws.s3"], "detail": {"object": {"key": [{"prefix": "inbox/"}]}}}
    other = {"detail": {"object": {"key": [{"prefix": "drop/"}, {"prefix": "inbox/"}]}}}
    assert key_prefixes([rule, other]) == ["drop/", "inbox/"]


def test_a_rule_without_a_key_prefix_watches_the_whole_bucket() -> None:
    exact = {"detail": {"object": {"key": ["inbox/exact.txt"]}}}
    anything = {"source": ["aws.s3"]}
    assert key_prefixes([exact]) == [None]
    assert key_prefixes([anything]) == [None]
    assert key_prefixes([]) == [None]


def test_an_sns_delivery_closed_makes_no_further_attempt() -> None:
    """A closed delivery (its local cloud stopping) retries nothing more, and close() returns
    once the invocation under way has ended: none reaches a stopped Lambda service."""
    import threading
    from types import SimpleNamespace

    from tandem.local.event_sources import SnsLambdaDelivery

    first = threading.Event()
    calls: list[str] = []

    def invoke(function: str, event: dict[str, object]) -> object:
        calls.append(function)
        first.set()
        return SimpleNamespace(error_type="Unhandled", payload={"errorType": "Boom"})

    delivery = SnsLambdaDelivery("fn", invoke, retry_s=3600)  # the retry would wait an hour
    topic = "arn:aws:sns:us-east-1:123456789012:t"
    delivery(topic + ":sub", topic, "m-1", None, "{}")
    assert first.wait(60)
    delivery.close(timeout=60)
    assert calls == ["fn"] and delivery.delivered == 0
    assert not any(t.is_alive() for t in delivery._threads)
