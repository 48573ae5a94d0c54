"""Tests of auth.webhooks: signing and verifying workflow webhook
deliveries, as the service documents them."""

import hashlib
import hmac
import unittest
from datetime import datetime, timezone

from auth import WebhookVerificationError, webhooks
from auth.webhooks import sign, verify

SECRET = "whsec_" + "A" * 43
PREVIOUS = "whsec_" + "B" * 43
BODY = b'{"added":["carol"],"at":"2026-12-06T02:05:00.004Z","removed":[],"run_id":"42","users":["alice","bob","carol"],"workflow":"payroll"}'
NOW = 1796522700


def headers(signature, timestamp=NOW, **extra):
    h = {"Auth-Webhook-Id": "42", "Auth-Webhook-Timestamp": str(timestamp), "Auth-Webhook-Signature": signature}
    h.update(extra)
    return h


class SignTest(unittest.TestCase):
    def test_sign_is_the_documented_hmac(self):
        mac = hmac.new(SECRET.encode(), str(NOW).encode() + b"." + BODY, hashlib.sha256).hexdigest()
        self.assertEqual(sign(SECRET, NOW, BODY), "v1=" + mac)
        self.assertEqual(sign(SECRET, str(NOW), BODY.decode()), "v1=" + mac)

    def test_sign_with_two_secrets_gives_two_entries_new_first(self):
        both = sign([SECRET, PREVIOUS], NOW, BODY)
        self.assertEqual(both, sign(SECRET, NOW, BODY) + "," + sign(PREVIOUS, NOW, BODY))

    def test_sign_refuses_no_secret(self):
        for secret in ("", [], None):
            with self.subTest(secret=secret):
                with self.assertRaises(ValueError):
                    sign(secret, NOW, BODY)


class VerifyTest(unittest.TestCase):
    def test_accepts_a_good_signature(self):
        self.assertIsNone(verify(SECRET, headers(sign(SECRET, NOW, BODY)), BODY, now=NOW))

    def test_accepts_either_signature_of_a_rotation(self):
        both = sign([SECRET, PREVIOUS], NOW, BODY)
        verify(SECRET, headers(both), BODY, now=NOW)
        verify(PREVIOUS, headers(both), BODY, now=NOW)
        # The receiver may hold both secrets too, while it switches over.
        verify([PREVIOUS, SECRET], headers(sign(SECRET, NOW, BODY)), BODY, now=NOW)

    def test_headers_are_looked_up_without_regard_to_case(self):
        sig = sign(SECRET, NOW, BODY)
        for h in (
            {"auth-webhook-timestamp": str(NOW), "AUTH-WEBHOOK-SIGNATURE": sig},
            [("Auth-Webhook-Timestamp", str(NOW)), ("auth-webhook-signature", sig)],
            {b"auth-webhook-timestamp": b"%d" % NOW, b"auth-webhook-signature": sig.encode()},
            {"auth-webhook-timestamp": [str(NOW)], "auth-webhook-signature": [sig]},
        ):
            with self.subTest(headers=h):
                verify(SECRET, h, BODY, now=NOW)

    def test_email_message_headers(self):
        # http.server and http.client hand headers over as email.message.Message.
        from email.message import Message

        m = Message()
        m["auth-webhook-timestamp"] = str(NOW)
        m["Auth-Webhook-Signature"] = sign(SECRET, NOW, BODY)
        verify(SECRET, m, BODY, now=NOW)

    def test_body_as_text_and_extra_whitespace_and_unknown_schemes(self):
        sig = sign(SECRET, NOW, BODY)
        verify(SECRET, headers(" v0=abcd , " + sig.upper().replace("V1=", "v1=") + " ", " %d " % NOW), BODY.decode(), now=NOW)

    def test_rejects_tampering(self):
        sig = sign(SECRET, NOW, BODY)
        tampered = [
            ("body", headers(sig), BODY.replace(b"carol", b"mallory")),
            ("body appended", headers(sig), BODY + b" "),
            ("timestamp", headers(sig, NOW + 1), BODY),
            ("signature", headers(sig[:-1] + ("0" if sig[-1] != "0" else "1")), BODY),
        ]
        for what, h, body in tampered:
            with self.subTest(tampered=what):
                with self.assertRaisesRegex(WebhookVerificationError, "no v1 signature matches"):
                    verify(SECRET, h, body, now=NOW)

    def test_rejects_a_wrong_secret(self):
        with self.assertRaisesRegex(WebhookVerificationError, "no v1 signature matches"):
            verify(PREVIOUS, headers(sign(SECRET, NOW, BODY)), BODY, now=NOW)
        with self.assertRaises(WebhookVerificationError):
            verify("whsec_other", headers(sign([SECRET, PREVIOUS], NOW, BODY)), BODY, now=NOW)

    def test_rejects_stale_and_future_timestamps(self):
        for ts, now, tolerance, msg in (
            (NOW - 301, NOW, 300, "301 s old"),
            (NOW + 301, NOW, 300, "301 s in the future"),
            (NOW - 11, NOW, 10, "old"),
            (NOW, datetime.fromtimestamp(NOW + 400, timezone.utc), 300, "old"),
        ):
            with self.subTest(ts=ts, tolerance=tolerance):
                with self.assertRaisesRegex(WebhookVerificationError, msg):
                    verify(SECRET, headers(sign(SECRET, ts, BODY), ts), BODY, tolerance=tolerance, now=now)
        # At the tolerance exactly it is still accepted, either way.
        for ts in (NOW - 300, NOW + 300):
            verify(SECRET, headers(sign(SECRET, ts, BODY), ts), BODY, now=NOW)
        # The default clock: a delivery signed now passes, one from 2001 fails.
        import time

        now = int(time.time())
        verify(SECRET, headers(sign(SECRET, now, BODY), now), BODY)
        with self.assertRaisesRegex(WebhookVerificationError, "old"):
            verify(SECRET, headers(sign(SECRET, 1000000000, BODY), 1000000000), BODY)

    def test_rejects_missing_and_malformed_headers(self):
        sig = sign(SECRET, NOW, BODY)
        cases = [
            ({"Auth-Webhook-Signature": sig}, "missing Auth-Webhook-Timestamp"),
            ({"Auth-Webhook-Timestamp": str(NOW)}, "missing Auth-Webhook-Signature"),
            ({}, "missing"),
            (headers(sig, "soon"), "malformed Auth-Webhook-Timestamp"),
            (headers(sig, "-5"), "malformed Auth-Webhook-Timestamp"),
            (headers(sig, "1.5"), "malformed Auth-Webhook-Timestamp"),
            (headers(sig, ""), "malformed Auth-Webhook-Timestamp"),
            (headers(""), "malformed Auth-Webhook-Signature"),
            (headers(sig[3:]), "malformed Auth-Webhook-Signature"),
            (headers("v0=" + sig[3:]), "no v1 signature"),
            (headers(sig + ",,"), "malformed Auth-Webhook-Signature"),
            (headers("v1=\u00e9\u00e9"), "no v1 signature matches"),
        ]
        for h, msg in cases:
            with self.subTest(headers=h):
                with self.assertRaisesRegex(WebhookVerificationError, msg):
                    verify(SECRET, h, BODY, now=NOW)

    def test_the_error_is_a_value_error(self):
        self.assertTrue(issubclass(WebhookVerificationError, ValueError))
        self.assertIs(webhooks.WebhookVerificationError, WebhookVerificationError)

    def test_bad_arguments_are_refused(self):
        h = headers(sign(SECRET, NOW, BODY))
        with self.assertRaises(ValueError):
            verify("", h, BODY, now=NOW)
        with self.assertRaises(ValueError):
            verify(SECRET, h, BODY, tolerance=-1, now=NOW)
        with self.assertRaises(TypeError):
            verify(SECRET, h, {"workflow": "payroll"}, now=NOW)  # a parsed body, not the raw one


if __name__ == "__main__":
    unittest.main()
