"""With the service stopped, every method raises AuthTransportError: an
outage never reads as a denial or an empty list.

The address is $AUTH_TEST_STOPPED_URL (an auth-server that was started and
then stopped) or, without it, a local port where nothing listens.
"""

import os
import subprocess
import sys
import unittest
import uuid

from support import METHODS, closed_port_url

from auth import AuthTransportError, CircuitOpenError, EnhancedAuthClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ServiceDownTest(unittest.TestCase):
    def setUp(self):
        self.url = os.environ.get("AUTH_TEST_STOPPED_URL") or closed_port_url()

    def test_every_method_raises_without_a_breaker(self):
        c = EnhancedAuthClient(str(uuid.uuid4()), self.url, max_retries=1, timeout=5,
                               circuit_breaker_enabled=False, backoff_factor=0.001)
        self.addCleanup(c.close)
        for name, args, _, _ in METHODS:
            with self.subTest(method=name):
                with self.assertRaises(AuthTransportError) as ctx:
                    got = getattr(c, name)(*args)
                    self.fail("%s returned %r with the service down" % (name, got))
                self.assertIsNone(ctx.exception.status)
                self.assertIsNone(ctx.exception.body)
                self.assertNotIsInstance(ctx.exception, CircuitOpenError)

    def test_every_method_raises_with_the_default_breaker(self):
        c = EnhancedAuthClient(str(uuid.uuid4()), self.url, max_retries=0, timeout=5)
        self.addCleanup(c.close)
        for i, (name, args, _, _) in enumerate(METHODS):
            with self.subTest(method=name):
                with self.assertRaises(AuthTransportError) as ctx:
                    got = getattr(c, name)(*args)
                    self.fail("%s returned %r with the service down" % (name, got))
                self.assertIsNone(ctx.exception.status)
                # The default breaker opens after 5 failed calls.
                self.assertEqual(isinstance(ctx.exception, CircuitOpenError), i >= 5)

    def test_quickstart_reports_no_answer(self):
        script = os.path.join(ROOT, "examples", "quickstart.py")
        env = dict(os.environ, PYTHONPATH=ROOT)
        proc = subprocess.run([sys.executable, script, self.url, str(uuid.uuid4())], env=env,
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        self.assertIn("no answer from the auth service", proc.stderr)
        self.assertNotIn("may manage_users", proc.stdout)


if __name__ == "__main__":
    unittest.main()
