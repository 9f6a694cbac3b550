"""Webhooks as receivers expect them: Standard Webhooks signatures checked by the real
`standardwebhooks` library, `whsec_` secrets, URL validation (SSRF, after DNS), one DNS answer
used for the connection (no rebinding), TLS verified against the hostname, no redirects."""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import trustme
from standardwebhooks import Webhook, WebhookVerificationError
from tandem_common.adapters import webhooks
from tandem_common.adapters.webhooks import (
    HttpResult,
    Target,
    post,
    resolve_target,
    retry_after_seconds,
    send_signed,
    signed_headers,
    validate_webhook_url,
)
from tandem_common.contracts import webhook_message_id, webhook_secret_key
from tandem_common.errors import WebhookRefused
from tandem_common.models import JobOptions, ValidationError

from tandem.local.http_server import BackgroundHttpServer

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
MSG_ID = webhook_message_id("0b9e6d3c-5f1a-4c2e-9a7b-1d2e3f405162", "job.succeeded")
BODY = b'{"type":"job.succeeded","timestamp":"2026-01-01T00:00:00.000Z","data":{"job_id":"j"}}'
HOST = "hooks.example.test"


def resolve_to(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> None:
    def fake(host: str, port: Any, *a: Any, **k: Any) -> list[Any]:
        return [(2 if ":" not in ip else 10, 1, 6, "", (ip, port)) for ip in addresses]

    monkeypatch.setattr(webhooks.socket, "getaddrinfo", fake)


# ------------------------------------------------------------------ signatures and secrets


def test_signature_verifies_with_the_standardwebhooks_library() -> None:
    # Given Tandem's headers for a body, signed now
    headers = signed_headers(SECRET, MSG_ID, BODY)
    # Then a receiver using the library verifies them unchanged, and gets the payload
    assert Webhook(SECRET).verify(BODY, headers) == json.loads(BODY)
    assert headers["webhook-id"] == MSG_ID and headers["webhook-signature"].startswith("v1,")
    # ... and any change to the body, the id, the timestamp or the secret is refused
    other = "whsec_" + base64.b64encode(bytes(range(1, 33))).decode()
    for bad_body, bad_headers, secret in (
        (BODY + b" ", headers, SECRET),
        (BODY, {**headers, "webhook-id": MSG_ID + "x"}, SECRET),
        (
            BODY,
            {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) + 1)},
            SECRET,
        ),
        (BODY, headers, other),
    ):
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(bad_body, bad_headers)


def test_the_librarys_replay_window_refuses_an_old_attempt() -> None:
    headers = signed_headers(SECRET, MSG_ID, BODY, now=1_700_000_000)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(BODY, headers)


def test_a_secret_stored_before_the_whsec_rule_signs_with_its_utf8_bytes() -> None:
    legacy = "s3cret-s3cret-s3cret"  # on a job created before secrets had to be whsec_
    headers = signed_headers(legacy, MSG_ID, BODY)
    assert Webhook(legacy.encode()).verify(BODY, headers) == json.loads(BODY)


@pytest.mark.parametrize(
    "secret",
    [
        "whsec_" + base64.b64encode(b"k" * 24).decode(),
        "whsec_" + base64.b64encode(b"k" * 64).decode(),
        "whsec_" + base64.b64encode(b"k" * 32).decode().rstrip("="),  # unpadded
    ],
)
def test_whsec_secrets_of_24_to_64_bytes_are_accepted(secret: str) -> None:
    assert JobOptions(webhook_url="https://x.example/", webhook_secret=secret).webhook_secret
    assert webhook_secret_key(secret) == Webhook(secret)._whsecret


@pytest.mark.parametrize(
    "secret",
    [
        "s3cret-s3cret-s3cret",  # no prefix: was accepted before
        "whsec_" + base64.b64encode(b"k" * 23).decode(),  # too short
        "whsec_" + base64.b64encode(b"k" * 65).decode(),  # too long
        "whsec_not base64!",
        "whsec_",
        "WHSEC_" + base64.b64encode(b"k" * 32).decode(),
    ],
)
def test_other_secrets_get_an_error_naming_the_format(secret: str) -> None:
    with pytest.raises(ValidationError) as info:
        JobOptions.model_validate({"webhook_url": "https://x.example/", "webhook_secret": secret})
    message = str(info.value)
    assert "webhook_secret must be a Standard Webhooks secret: 'whsec_' followed by" in message
    assert "24 to 64 random bytes" in message


def test_webhook_id_is_stable_per_event_and_distinct_across_events() -> None:
    job = "0b9e6d3c-5f1a-4c2e-9a7b-1d2e3f405162"
    assert webhook_message_id(job, "job.failed") == webhook_message_id(job, "job.failed")
    ids = {
        webhook_message_id(job, "job.failed"),
        webhook_message_id(job, "job.succeeded"),
        webhook_message_id("1b9e6d3c-5f1a-4c2e-9a7b-1d2e3f405162", "job.failed"),
    }
    assert len(ids) == 3
    assert all(i.startswith("msg_") and "." not in i for i in ids)


# ------------------------------------------------------------------ URL validation (SSRF)


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


def test_public_https_is_allowed_and_ipv4_is_connected_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolve_to(monkeypatch, "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "93.184.215.14")
    target = resolve_target("https://hooks.example.com/x?a=1")
    assert target == Target("https", "hooks.example.com", 443, "/x?a=1", "93.184.215.14")
    assert target.host_header == "hooks.example.com"


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
    def no_dns(host: str, port: int) -> list[str]:
        raise AssertionError("resolved")

    with pytest.raises(WebhookRefused):
        validate_webhook_url(url, resolve=no_dns)


def test_unresolvable_host_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*a: Any, **k: Any) -> Any:
        raise webhooks.socket.gaierror("no such host")

    monkeypatch.setattr(webhooks.socket, "getaddrinfo", fail)
    with pytest.raises(WebhookRefused, match="does not resolve"):
        validate_webhook_url("https://nowhere.example.com/x")


def test_local_mode_allows_http_and_loopback() -> None:
    validate_webhook_url("http://127.0.0.1:9000/hook", allow_private=True)
    with pytest.raises(WebhookRefused):
        validate_webhook_url("file:///etc/passwd", allow_private=True)


# ------------------------------------------------------------------ DNS rebinding


@dataclass
class Rebinding:
    """A resolver that answers a public address first and a private one afterwards."""

    answers: list[list[str]] = field(default_factory=lambda: [["93.184.215.14"], ["10.0.0.7"]])
    calls: int = 0

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls += 1
        return self.answers[min(self.calls, len(self.answers)) - 1]


def test_the_connection_goes_to_the_address_that_was_validated() -> None:
    # Given a host whose DNS answer turns private after the first lookup
    resolver = Rebinding()
    sent: list[Target] = []

    def connect(target: Target, body: bytes, headers: Any, timeout: float) -> HttpResult:
        sent.append(target)
        return HttpResult(204)

    # When one attempt is sent
    result = send_signed(
        "https://hooks.example.com/t", SECRET, MSG_ID, BODY, resolve=resolver, send=connect
    )
    # Then the host was resolved once, and the connection used that validated public address,
    # keeping the hostname for Host, SNI and the certificate
    assert result == HttpResult(204)
    assert resolver.calls == 1
    assert sent == [Target("https", "hooks.example.com", 443, "/t", "93.184.215.14")]


def test_a_private_answer_at_send_time_sends_nothing() -> None:
    resolver = Rebinding(answers=[["10.0.0.7"]])  # changed since the job was accepted
    result = send_signed(
        "https://hooks.example.com/t",
        SECRET,
        MSG_ID,
        BODY,
        resolve=resolver,
        send=lambda *a: pytest.fail("sent"),
    )
    assert result.status is None and "private" in (result.error or "")


# ------------------------------------------------------------------ HTTP, for real, on 127.0.0.1


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A receiver on 127.0.0.1 answering `status` (+ extra headers); https with `cert`."""

    def __init__(
        self,
        status: int = 204,
        headers: dict[str, str] | None = None,
        cert: trustme.LeafCert | None = None,
    ) -> None:
        self.status = status
        self.extra = headers or {}
        self.seen: list[Seen] = []
        self.sni: list[str | None] = []
        self.server = BackgroundHttpServer(self._handle, name="webhook-receiver")
        if cert is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            cert.configure_cert(context)
            context.sni_callback = self._note_sni
            self.server.server.socket = context.wrap_socket(
                self.server.server.socket, server_side=True
            )
        self.port = self.server.port

    def _note_sni(self, sock: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        self.sni.append(name)

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("content-length") or 0)
        self.seen.append(
            Seen(
                request.path,
                {k.lower(): v for k, v in request.headers.items()},
                request.rfile.read(length),
            )
        )
        request.send_response(self.status)
        for k, v in self.extra.items():
            request.send_header(k, v)
        request.send_header("content-length", "0")
        request.end_headers()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    started: list[Receiver] = []
    yield started
    for r in started:
        r.server.close()


def start(receivers: list[Receiver], **kw: Any) -> Receiver:
    receiver = Receiver(**kw)
    receiver.server.start()
    receivers.append(receiver)
    return receiver


def loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


def test_a_real_post_keeps_the_hostname_in_host_and_verifies(receivers: list[Receiver]) -> None:
    receiver = start(receivers)
    url = f"http://{HOST}:{receiver.port}/hook?tenant=7"
    result = send_signed(url, SECRET, MSG_ID, BODY, allow_private=True, resolve=loopback)
    assert result == HttpResult(204)
    (seen,) = receiver.seen
    assert seen.path == "/hook?tenant=7"
    assert seen.headers["host"] == f"{HOST}:{receiver.port}"
    assert seen.headers["content-type"] == "application/json"
    assert Webhook(SECRET).verify(seen.body, seen.headers) == json.loads(BODY)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def test_https_is_verified_against_the_hostname_not_the_address(
    receivers: list[Receiver], ca: trustme.CA, tmp_path: Path
) -> None:
    # Given an https receiver whose certificate names the URL's host, reached through 127.0.0.1
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    receiver = start(receivers, cert=ca.issue_cert(HOST))
    target = resolve_target(f"https://{HOST}:{receiver.port}/h", True, loopback)
    # When Tandem posts to it (trusting the test CA)
    result = post(target, BODY, signed_headers(SECRET, MSG_ID, BODY), 10, ca_certs=str(bundle))
    # Then TLS succeeded with SNI and Host naming the host, not the IP
    assert result == HttpResult(204)
    assert receiver.sni == [HOST]
    assert receiver.seen[0].headers["host"] == f"{HOST}:{receiver.port}"


def test_https_with_a_certificate_for_another_name_is_refused(
    receivers: list[Receiver], ca: trustme.CA, tmp_path: Path
) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    receiver = start(receivers, cert=ca.issue_cert("other.example.test", "127.0.0.1"))
    target = resolve_target(f"https://{HOST}:{receiver.port}/h", True, loopback)
    result = post(target, BODY, {}, 10, ca_certs=str(bundle))
    assert result.status is None and "SSLError" in (result.error or "")
    assert receiver.seen == []


def test_https_from_an_unknown_ca_is_refused(receivers: list[Receiver], ca: trustme.CA) -> None:
    receiver = start(receivers, cert=ca.issue_cert(HOST))
    target = resolve_target(f"https://{HOST}:{receiver.port}/h", True, loopback)
    result = post(target, BODY, {}, 10)  # the system trust store does not know the test CA
    assert result.status is None and "SSLError" in (result.error or "")
    assert receiver.seen == []


def test_a_redirect_is_not_followed(receivers: list[Receiver]) -> None:
    elsewhere = start(receivers)
    redirecting = start(
        receivers, status=307, headers={"location": f"http://127.0.0.1:{elsewhere.port}/x"}
    )
    target = resolve_target(f"http://{HOST}:{redirecting.port}/h", True, loopback)
    assert post(target, BODY, {}, 10) == HttpResult(307)
    assert len(redirecting.seen) == 1 and elsewhere.seen == []


def test_retry_after_is_read_from_the_answer(receivers: list[Receiver]) -> None:
    receiver = start(receivers, status=429, headers={"retry-after": "120"})
    target = resolve_target(f"http://{HOST}:{receiver.port}/h", True, loopback)
    assert post(target, BODY, {}, 10) == HttpResult(429, None, 120.0)


def test_no_answer_within_the_timeout_is_an_error_not_a_hang() -> None:
    # A listener that accepts and never answers (its backlog holds the connection)
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        target = resolve_target(f"http://{HOST}:{port}/h", True, loopback)
        done: list[HttpResult] = []
        worker = threading.Thread(target=lambda: done.append(post(target, BODY, {}, 0.5)))
        worker.start()
        worker.join(timeout=60)
    assert done and done[0].status is None and "Timeout" in (done[0].error or "")


def test_nothing_listening_is_an_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        result = post(resolve_target(f"http://{HOST}:{port}/h", True, loopback), BODY, {}, 5)
    assert result.status is None and result.error


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: now
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_seconds_and_http_dates(value: str | None, expected: float | None) -> None:
    now = 1445412450.0  # 2015-10-21 07:27:30 UTC
    assert retry_after_seconds(value, now) == expected
