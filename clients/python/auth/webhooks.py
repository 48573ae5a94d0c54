"""Verify the webhooks auth-server sends for workflow runs.

Each delivery is a POST with a compact JSON body and three headers::

    Auth-Webhook-Id: 42                 (the run id: deduplicate on it)
    Auth-Webhook-Timestamp: 1796522700  (unix seconds)
    Auth-Webhook-Signature: v1=<hex>    (two entries, "v1=<new>,v1=<previous>",
                                         while a rotated secret is in its grace)

The signature is the hex HMAC-SHA256 of ``timestamp + "." + body``, keyed with
the workflow's secret (the whole ``whsec_…`` string, as UTF-8 bytes).
:func:`verify` checks it against the raw body, as received, before anything
reads the JSON::

    from auth.webhooks import WebhookVerificationError, verify

    try:
        verify(secret, request.headers, request.get_data())  # raw bytes
    except WebhookVerificationError as exc:
        return 400, str(exc)
    payload = json.loads(body)

Standard library only.
"""

import hashlib
import hmac
import time
from datetime import datetime, timezone

__all__ = [
    "ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DEFAULT_TOLERANCE",
    "WebhookVerificationError",
    "sign",
    "verify",
]

#: The header with the delivery's id (the run id, the same on every retry).
ID_HEADER = "Auth-Webhook-Id"
#: The header with the delivery's time, in unix seconds.
TIMESTAMP_HEADER = "Auth-Webhook-Timestamp"
#: The header with the signatures.
SIGNATURE_HEADER = "Auth-Webhook-Signature"
#: How far, in seconds, a delivery's timestamp may be from now.
DEFAULT_TOLERANCE = 300

_SCHEME = "v1"


class WebhookVerificationError(ValueError):
    """A delivery that must not be trusted: a header is missing or
    malformed, its timestamp is too old or in the future, or no signature
    matches. The message says which."""


def _secrets(secret):
    """The secret, or each of several, as bytes."""
    if isinstance(secret, (str, bytes)):
        secret = [secret]
    try:
        keys = [s.encode("utf-8") if isinstance(s, str) else s for s in secret]
    except TypeError:
        keys = []
    if not keys or any(not isinstance(k, bytes) or not k for k in keys):
        raise ValueError("secret must be a non-empty string, or a list of them")
    return keys


def _bytes(body):
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    raise TypeError("body must be the raw request body, bytes (or str), not %s" % type(body).__name__)


def _mac(key, timestamp, body):
    return hmac.new(key, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def sign(secrets, timestamp, body):
    """The ``Auth-Webhook-Signature`` value for ``body`` sent at
    ``timestamp`` (unix seconds): ``"v1=<hex>"``, or one comma-separated
    entry per secret when ``secrets`` is a list (the new secret first).
    For tests of a receiver."""
    timestamp = int(timestamp)
    body = _bytes(body)
    return ",".join("%s=%s" % (_SCHEME, _mac(k, timestamp, body)) for k in _secrets(secrets))


def _header(headers, name):
    """The value of header ``name`` in ``headers``, looked up without regard
    to case; None when it is absent."""
    items = headers.items() if hasattr(headers, "items") else headers
    want = name.lower()
    for key, value in items:
        if isinstance(key, bytes):
            key = key.decode("latin-1")
        if key.lower() == want:
            if isinstance(value, (list, tuple)):
                value = value[0] if value else None
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            return value
    return None


def _now(now):
    if now is None:
        return time.time()
    if isinstance(now, datetime):
        if now.tzinfo is None:
            now = now.replace(tzinfo=timezone.utc)
        return now.timestamp()
    return float(now)


def verify(secret, headers, body, tolerance=DEFAULT_TOLERANCE, now=None):
    """Check that a webhook delivery comes from auth-server, or raise
    :class:`WebhookVerificationError`.

    :param secret: the workflow's secret (``"whsec_…"``), or a list of
        secrets any of which may have signed (while the receiver switches
        over after a rotation).
    :param headers: the request's headers: any mapping (or list of
        ``(name, value)`` pairs); names are matched without regard to case.
    :param body: the raw request body, bytes exactly as received (a str is
        encoded as UTF-8). Never a re-serialised JSON object: any change of
        a byte fails the check.
    :param tolerance: how many seconds the timestamp may be from ``now``,
        either way (default 300).
    :param now: the current time, unix seconds or a ``datetime`` (default:
        the clock).

    The delivery is accepted when its timestamp is within ``tolerance`` of
    ``now`` and one of its ``v1`` signatures is the HMAC-SHA256 of
    ``timestamp + "." + body`` under one of the secrets (compared in
    constant time). Entries of other schemes are ignored. Returns None.
    """
    keys = _secrets(secret)
    body = _bytes(body)
    if tolerance is None or tolerance < 0:
        raise ValueError("tolerance must be a number of seconds, 0 or more")

    raw_ts = _header(headers, TIMESTAMP_HEADER)
    if raw_ts is None:
        raise WebhookVerificationError("missing %s header" % TIMESTAMP_HEADER)
    raw_sig = _header(headers, SIGNATURE_HEADER)
    if raw_sig is None:
        raise WebhookVerificationError("missing %s header" % SIGNATURE_HEADER)

    raw_ts = raw_ts.strip()
    if not raw_ts.isascii() or not raw_ts.isdigit():
        raise WebhookVerificationError("malformed %s header %r: want unix seconds" % (TIMESTAMP_HEADER, raw_ts))
    timestamp = int(raw_ts)
    age = _now(now) - timestamp
    if age > tolerance:
        raise WebhookVerificationError(
            "%s is %d s old, more than the tolerance of %s s" % (TIMESTAMP_HEADER, age, tolerance)
        )
    if -age > tolerance:
        raise WebhookVerificationError(
            "%s is %d s in the future, more than the tolerance of %s s" % (TIMESTAMP_HEADER, -age, tolerance)
        )

    candidates = []
    for entry in raw_sig.split(","):
        scheme, sep, value = entry.strip().partition("=")
        if not sep or not scheme:
            raise WebhookVerificationError("malformed %s header: entry %r is not scheme=hex" % (SIGNATURE_HEADER, entry))
        if scheme == _SCHEME:
            candidates.append(value.strip().lower().encode("utf-8"))
    if not candidates:
        raise WebhookVerificationError("malformed %s header: no %s signature" % (SIGNATURE_HEADER, _SCHEME))

    expected = [_mac(k, raw_ts, body).encode("ascii") for k in keys]
    matched = False
    for want in expected:
        for got in candidates:
            # Every pair is compared: the time taken does not tell which.
            matched |= hmac.compare_digest(want, got)
    if not matched:
        raise WebhookVerificationError("no %s signature matches the body and the secret" % _SCHEME)
