"""Webhooks over HTTP, per Standard Webhooks 1.0: URL checks against SSRF, signing, one attempt.

Signing (standardwebhooks.com): `webhook-id` (the same on every retry of an event),
`webhook-timestamp` (epoch s of this attempt) and
`webhook-signature: v1,<base64 HMAC-SHA256(key, f"{id}.{timestamp}.{body}")>`, where the key is
the base64 after `whsec_` (`contracts.webhook_secret_key`).

Connecting: the host is resolved once and every answer must be a public address (unless
`allow_private`, the local cloud); the request then goes to one of those validated addresses
through urllib3, with the Host header, TLS SNI and the certificate check on the URL's hostname.
No second lookup happens, so a DNS answer that changes after the check (rebinding) cannot
redirect the request. Redirects are never followed and urllib3 retries nothing: retries are the
webhook queue's (`usecases/webhook_delivery.py`). urllib3 ships with botocore in the Lambda
runtime.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import urllib3

from tandem_common.contracts import WEBHOOK_SECRET_PREFIX, webhook_secret_key
from tandem_common.errors import WebhookRefused

USER_AGENT = "tandem-webhooks/2"
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"

# host, port -> the addresses it resolves to (injectable: tests answer for DNS)
Resolver = Callable[[str, int], list[str]]


@dataclass(frozen=True)
class Target:
    """Where one attempt goes: the URL's parts, and the one validated address to connect to."""

    scheme: str
    host: str  # the URL's hostname: Host header, SNI and certificate name
    port: int
    path: str  # path and query, as sent in the request line
    address: str  # the resolved, validated IP

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class HttpResult:
    """One attempt's answer: a status, or an error (no response), and Retry-After if given."""

    status: int | None
    error: str | None = None
    retry_after_s: float | None = None


def _address_refused(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return _address_refused(ip.ipv4_mapped)
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def system_resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to (IPv4 first: Lambda outside a VPC has no IPv6 egress)."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    addresses = [str(info[4][0]).split("%", 1)[0] for info in infos]
    return sorted(dict.fromkeys(addresses), key=lambda a: ":" in a)


def _addresses(host: str, port: int, resolve: Resolver) -> list[str]:
    """An IP literal as it is; a name through `resolve`, once."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise WebhookRefused(f"webhook host does not resolve: {host}") from exc
    if not addresses:
        raise WebhookRefused(f"webhook host does not resolve: {host}")
    return addresses


def resolve_target(
    url: str, allow_private: bool = False, resolve: Resolver = system_resolve
) -> Target:
    """Check the URL and resolve its host once: https only, to a public address (after DNS).

    With `allow_private` (local cloud only) http and private/loopback targets are allowed.
    Raises `WebhookRefused` with the reason."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookRefused(f"webhook_url is not a valid URL: {exc}") from exc
    schemes = {"https", "http"} if allow_private else {"https"}
    if parts.scheme not in schemes:
        raise WebhookRefused(f"webhook_url must use {' or '.join(sorted(schemes))}")
    if not parts.hostname:
        raise WebhookRefused("webhook_url has no host")
    if parts.username or parts.password:
        raise WebhookRefused("webhook_url must not carry credentials")
    host = parts.hostname
    port = port or (443 if parts.scheme == "https" else 80)
    addresses = _addresses(host, port, resolve)
    if not allow_private:
        for address in addresses:
            if _address_refused(ipaddress.ip_address(address)):
                raise WebhookRefused("webhook_url points at a private or reserved address")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port, path, addresses[0])


def validate_webhook_url(
    url: str, allow_private: bool = False, resolve: Resolver = system_resolve
) -> None:
    """`resolve_target` for its checks only (POST /v1/jobs refuses a bad target with a 422)."""
    resolve_target(url, allow_private, resolve)


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: a `whsec_` secret's bytes. A job stored before secrets had to be
    `whsec_` (a retry copies its secret) is signed with the secret's UTF-8 bytes as the key
    (`standardwebhooks.Webhook(secret.encode())` verifies it)."""
    if secret.startswith(WEBHOOK_SECRET_PREFIX):
        return webhook_secret_key(secret)
    return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(
    secret: str, msg_id: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    timestamp = int(time.time() if now is None else now)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, msg_id, timestamp, body),
    }


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds from `now`: delta-seconds or an HTTP-date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


def post(
    target: Target,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float,
    ca_certs: str | None = None,
) -> HttpResult:
    """POST to `target.address` only; Host, SNI and the certificate check use `target.host`.
    `ca_certs` (tests) replaces the system's trust store."""
    limit = urllib3.Timeout(total=timeout)
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            target.address,
            target.port,
            timeout=limit,
            maxsize=1,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_certs,
            server_hostname=target.host,
            assert_hostname=target.host,
        )
    else:
        pool = urllib3.HTTPConnectionPool(
            target.address, target.port, timeout=limit, maxsize=1, retries=False
        )
    try:
        with pool:
            response = pool.urlopen(
                "POST",
                target.path,
                body=body,
                headers={**headers, "host": target.host_header},
                redirect=False,
                assert_same_host=False,
                preload_content=False,
            )
            response.close()  # the body is not read: a receiver's answer is its status
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        return HttpResult(None, f"{type(exc).__name__}: {exc}"[:300])
    retry_after = retry_after_seconds(response.headers.get("retry-after"), time.time())
    return HttpResult(response.status, None, retry_after)


Poster = Callable[[Target, bytes, Mapping[str, str], float], HttpResult]


def send_signed(
    url: str,
    secret: str,
    msg_id: str,
    body: bytes,
    *,
    allow_private: bool = False,
    timeout: float = 15.0,
    resolve: Resolver = system_resolve,
    send: Poster = post,
    now: float | None = None,
) -> HttpResult:
    """One attempt: resolve and check the target (again, at send time), sign, POST. A refused
    target is an error result, and nothing is sent."""
    try:
        target = resolve_target(url, allow_private, resolve)
    except WebhookRefused as exc:
        return HttpResult(None, exc.message)
    return send(target, body, signed_headers(secret, msg_id, body, now), timeout)
