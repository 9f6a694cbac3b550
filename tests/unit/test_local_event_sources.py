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
