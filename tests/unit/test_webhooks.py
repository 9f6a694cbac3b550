"""Webhook URL validation (SSRF, after DNS), signatures and the replay window, delivery."""

from __future__ import annotations

import urllib.error
from typing import Any

import pytest
from tandem_common.adapters import webhooks
from tandem_common.adapters.webhooks import (
    send_webhook,
    sign,
    signed_headers,
    validate_webhook_url,
    verify_signature,
)
from tandem_common.errors import WebhookRefused


def resolve_to(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> None:
    def fake(host: str, port: Any, *a: Any, **k: Any) -> list[Any]:
        return [(2 if ":" not in ip else 10, 1, 6, "", (ip, port)) for ip in addresses]

    monkeypatch.setattr(webhooks.socket, "getaddrinfo", fake)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.5",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",
    ],
)
def test_host_resolving_to_private_address_is_refused(
    monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    # Given a harmless-looking host whose DNS answer is internal
    resolve_to(monkeypatch, address)
    with pytest.raises(WebhookRefused):
        validate_webhook_url("https://hooks.example.com/x")


def test_one_private_answer_among_public_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    resolve_to(monkeypatch, "93.184.215.14", "10.0.0.1")
    with pytest.raises(WebhookRefused):
        validate_webhook_url("https://hooks.example.com/x")


def test_public_https_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    resolve_to(monkeypatch, "93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c")
    validate_webhook_url("https://hooks.example.com/x")


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",
        "ftp://x/y",
        "https://user:pw@hooks.example.com/",
        "https:///nohost",
        "https://[::1]/x",
        "https://127.0.0.1:8443/x",
        "not a url",
    ],
)
def test_bad_urls_refused_without_dns(url: str) -> None:
    with pytest.raises(WebhookRefused):
        validate_webhook_url(url)


def test_local_mode_allows_http_and_loopback() -> None:
    validate_webhook_url("http://127.0.0.1:9000/hook", allow_private=True)
    with pytest.raises(WebhookRefused):
        validate_webhook_url("file:///etc/passwd", allow_private=True)


def test_signature_and_replay_window() -> None:
    body = b'{"job_id":"j","status":"SUCCEEDED"}'
    headers = signed_headers("topsecret", body, now=1_700_000_000)
    assert headers["X-Tandem-Signature"] == sign("topsecret", 1_700_000_000, body)
    assert (
        headers["X-Tandem-Signature"].startswith("v1=") and len(headers["X-Tandem-Signature"]) == 67
    )
    assert verify_signature("topsecret", body, headers, now=1_700_000_100)
    assert not verify_signature("topsecret", body, headers, now=1_700_000_301)  # replayed late
    assert not verify_signature("wrong", body, headers, now=1_700_000_000)
    assert not verify_signature("topsecret", body + b" ", headers, now=1_700_000_000)
    lowered = {k.lower(): v for k, v in headers.items()}
    assert verify_signature("topsecret", body, lowered, now=1_700_000_000)
    assert not verify_signature("topsecret", body, {}, now=1_700_000_000)


def test_delivery_retries_5xx_then_succeeds() -> None:
    calls: list[dict[str, str]] = []
    statuses = iter([503, 500, 204])
    sleeps: list[float] = []

    def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        calls.append(headers)
        code = next(statuses)
        if code >= 400:
            raise urllib.error.HTTPError(url, code, "err", None, None)  # type: ignore[arg-type]
        return code

    result = send_webhook(
        "http://127.0.0.1:9/h",
        "s" * 16,
        {"a": 1},
        allow_private=True,
        post=post,
        sleep=sleeps.append,
    )
    assert result.delivered and result.attempts == 3 and result.status == 204
    assert sleeps == [0.5, 1.0]
    assert verify_signature("s" * 16, b'{"a":1}', calls[-1])


@pytest.mark.parametrize("code", [302, 400, 404])
def test_redirects_and_client_errors_are_final(code: int) -> None:
    attempts = []

    def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        attempts.append(1)
        raise urllib.error.HTTPError(url, code, "no", None, None)  # type: ignore[arg-type]

    result = send_webhook(
        "http://127.0.0.1:9/h", "s" * 16, {}, allow_private=True, post=post, sleep=lambda s: None
    )
    assert not result.delivered and result.status == code and len(attempts) == 1


def test_opener_does_not_follow_redirects() -> None:
    handler = webhooks._NoRedirect()
    assert handler.redirect_request(None, None, 302, "Found", {}, "http://169.254.169.254/") is None


def test_refused_at_send_time_is_not_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    resolve_to(monkeypatch, "10.0.0.7")  # DNS changed since the job was accepted
    result = send_webhook(
        "https://hooks.example.com/x", "s" * 16, {}, post=lambda *a: pytest.fail("sent")
    )
    assert not result.delivered and result.attempts == 0 and "private" in (result.error or "")
