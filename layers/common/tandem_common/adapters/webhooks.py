"""Signed webhooks: URL validation against SSRF, HMAC-SHA256 signatures, bounded delivery.

Signature: `X-Tandem-Signature: v1=<hex hmac_sha256(secret, f"{ts}.{body}")>` with
`X-Tandem-Timestamp: <epoch s>`. Delivery never follows redirects.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from tandem_common.errors import WebhookRefused

SIGNATURE_HEADER = "X-Tandem-Signature"
TIMESTAMP_HEADER = "X-Tandem-Timestamp"
USER_AGENT = "tandem-webhooks/1"


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


def validate_webhook_url(url: str, allow_private: bool = False) -> None:
    """Refuse anything but https to a public address (after DNS resolution).

    With `allow_private` (local cloud only) http and private/loopback targets are allowed.
    """
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
    if allow_private:
        return
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        literal = None
    if literal is not None:
        if _address_refused(literal):
            raise WebhookRefused("webhook_url points at a private or reserved address")
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, port or 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise WebhookRefused(f"webhook host does not resolve: {parts.hostname}") from exc
    if not infos:
        raise WebhookRefused(f"webhook host does not resolve: {parts.hostname}")
    for info in infos:
        address = str(info[4][0]).split("%", 1)[0]
        if _address_refused(ipaddress.ip_address(address)):
            raise WebhookRefused("webhook_url resolves to a private or reserved address")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signed_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    ts = int(time.time() if now is None else now)
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: sign(secret, ts, body),
    }


def verify_signature(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    tolerance_s: int = 300,
    now: float | None = None,
) -> bool:
    """Receiver side: check the signature and that the timestamp is within the replay window."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        ts = int(lowered[TIMESTAMP_HEADER.lower()])
        given = lowered[SIGNATURE_HEADER.lower()]
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        return False
    return hmac.compare_digest(given, sign(secret, ts, body))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx becomes an HTTPError: never follow it


_opener = urllib.request.build_opener(_NoRedirect)


@dataclass
class DeliveryResult:
    delivered: bool
    attempts: int
    status: int | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    with _opener.open(request, timeout=timeout) as response:
        return int(response.status)


def send_webhook(
    url: str,
    secret: str,
    payload: Mapping[str, Any],
    *,
    allow_private: bool = False,
    attempts: int = 3,
    timeout: float = 5.0,
    backoff_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    post: Callable[[str, bytes, dict[str, str], float], int] = _post,
) -> DeliveryResult:
    """Validate (again, at send time) and POST the signed payload; retry 5xx/429/network errors."""
    try:
        validate_webhook_url(url, allow_private)
    except WebhookRefused as exc:
        return DeliveryResult(False, 0, error=exc.message)
    body = json.dumps(payload, separators=(",", ":")).encode()
    result = DeliveryResult(False, 0)
    for attempt in range(1, attempts + 1):
        result.attempts = attempt
        try:
            status = post(url, body, signed_headers(secret, body), timeout)
            result.status, result.error = status, None
            if 200 <= status < 300:
                result.delivered = True
                return result
        except urllib.error.HTTPError as exc:
            result.status, result.error = exc.code, f"HTTP {exc.code}"
            if 300 <= exc.code < 500 and exc.code != 429:
                return result  # redirects and client errors are final
        except (urllib.error.URLError, OSError) as exc:
            result.status, result.error = None, f"{type(exc).__name__}: {exc}"[:300]
        if attempt < attempts:
            sleep(backoff_s * 2 ** (attempt - 1))
    return result
