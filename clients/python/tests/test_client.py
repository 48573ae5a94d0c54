"""Tests of the client against scripted HTTP servers (no auth-server
needed): routes, escaping, retries, the circuit breaker, timeouts, pooling."""

import os
import sys
import threading
import time
import unittest
import uuid

from support import DROP, HANG, METHODS, FakeServer, fail_first, reply

import auth
from auth import AuthTransportError, CircuitBreaker, CircuitOpenError, Client, EnhancedAuthClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"

CHECK_OK = '{"code":200,"data":{"has_permission":true},"message":"m","success":true,"timestamp":"t"}'
ROLES_OK = '{"result":[{"description":null,"role":"admin"}]}'
YES = '{"result":true}'


class FakeTestCase(unittest.TestCase):
    def fake(self, handler):
        server = FakeServer(handler)
        self.addCleanup(server.close)
        return server

    def client(self, url, **kwargs):
        kwargs.setdefault("backoff_factor", 0.001)
        kwargs.setdefault("timeout", 5)
        c = EnhancedAuthClient(kwargs.pop("api_key", KEY), url, **kwargs)
        self.addCleanup(c.close)
        return c


class RoutesTest(FakeTestCase):
    def test_every_method_calls_its_route(self):
        server = self.fake(lambda n, req: reply(200, "{}"))
        c = self.client(server.url)
        for name, args, method, path in METHODS:
            with self.subTest(method=name):
                before = len(server.requests)
                got = getattr(c, name)(*args)
                self.assertEqual(got, {}, "the parsed JSON answer")
                self.assertEqual(len(server.requests), before + 1)
                got_method, got_path, _ = server.requests[-1]
                self.assertEqual((got_method, got_path), (method, path))

    def test_audit_query(self):
        server = self.fake(lambda n, req: reply(200, "{}"))
        c = self.client(server.url)
        from datetime import datetime

        c.get_audit(limit=5, cursor="9", action="CREATE_ROLE", user="john@example.com", since=datetime(2026, 1, 2, 3, 4, 5))
        self.assertEqual(
            server.requests[-1][1],
            "/api/audit?limit=5&cursor=9&action=CREATE_ROLE&user=john%40example.com&since=2026-01-02T03%3A04%3A05%2B00%3A00",
        )

    def test_path_values_are_escaped_and_the_prefix_is_kept(self):
        server = self.fake(lambda n, req: reply(200, CHECK_OK))
        cases = [
            ("", "john", "/api/has_permission/john/read"),
            ("/authz", "john", "/authz/api/has_permission/john/read"),
            ("/authz/", "john", "/authz/api/has_permission/john/read"),
            ("/a/b", "john", "/a/b/api/has_permission/john/read"),
            ("", "a/b", "/api/has_permission/a%2Fb/read"),
            ("", "a b", "/api/has_permission/a%20b/read"),
            ("", "50%", "/api/has_permission/50%25/read"),
            ("", "q?x#y", "/api/has_permission/q%3Fx%23y/read"),
            ("", "..", "/api/has_permission/%2E%2E/read"),
            ("", ".", "/api/has_permission/%2E/read"),
            ("", "john@example.com", "/api/has_permission/john%40example.com/read"),
        ]
        for prefix, user, want in cases:
            with self.subTest(prefix=prefix, user=user):
                c = self.client(server.url + prefix)
                self.assertEqual(c.user_has_permission(user, "read")["data"], {"has_permission": True})
                self.assertEqual(server.requests[-1][1], want)
        c = self.client(server.url + "/authz")
        c.ping()
        self.assertEqual(server.requests[-1][1], "/authz/ping")

    def test_empty_name_is_refused_without_a_request(self):
        server = self.fake(lambda n, req: reply(200, CHECK_OK))
        c = self.client(server.url)
        with self.assertRaises(ValueError):
            c.user_has_permission("", "read")
        self.assertEqual(server.hits, 0)

    def test_bad_service_url(self):
        for url in ["localhost:4000", "ftp://h", "http://", "http://h/?q=1", "http://h/#f"]:
            with self.subTest(url=url), self.assertRaises(ValueError):
                EnhancedAuthClient(KEY, url)

    def test_headers(self):
        server = self.fake(lambda n, req: reply(200, CHECK_OK))
        self.client(server.url, api_key="tenant-key").user_has_permission("john", "read")
        headers = server.requests[-1][2]
        self.assertEqual(headers.get("Authorization"), "Bearer tenant-key")
        self.assertEqual(headers.get("Accept"), "application/json")

    def test_repr_hides_the_key(self):
        c = self.client("http://127.0.0.1:1", api_key="secret-key")
        self.assertNotIn("secret-key", repr(c))

    def test_client_is_the_enhanced_client(self):
        self.assertTrue(issubclass(Client, EnhancedAuthClient))
        self.assertIs(auth.client.Client, Client)

    def test_context_manager_closes_the_pool(self):
        server = self.fake(lambda n, req: reply(200, CHECK_OK))
        with self.client(server.url) as c:
            c.user_has_permission("john", "read")
            self.assertEqual(len(c._http.pools), 1)
        self.assertEqual(len(c._http.pools), 0)


class ErrorTest(FakeTestCase):
    def test_non_2xx_raises_with_status_and_body(self):
        cases = [
            (400, '{"code":400,"details":{},"message":"Invalid role name: bad.name","success":false}',
             {"code": 400, "details": {}, "message": "Invalid role name: bad.name", "success": False}),
            (401, '{"message":"Authorization header is missing."}', {"message": "Authorization header is missing."}),
            (404, "", None),
            (500, '{"message":"An internal error occurred"}', {"message": "An internal error occurred"}),
            (502, "<html>bad gateway</html>", "<html>bad gateway</html>"),
            (302, "", None),
        ]
        for status, body, want in cases:
            with self.subTest(status=status):
                server = self.fake(lambda n, req, s=status, b=body: reply(s, b, {"Location": "http://127.0.0.1:1/"}))
                c = self.client(server.url, max_retries=0)
                with self.assertRaises(AuthTransportError) as ctx:
                    c.create_role("bad.name")
                self.assertEqual(ctx.exception.status, status)
                self.assertEqual(ctx.exception.body, want)
                if isinstance(want, dict):
                    self.assertIn(want["message"], str(ctx.exception))

    def test_a_2xx_that_is_not_json_raises(self):
        for body in ["", "PONG", "<html>captive portal</html>"]:
            with self.subTest(body=body):
                server = self.fake(lambda n, req, b=body: reply(200, b, {"Content-Type": "text/html"}))
                with self.assertRaises(AuthTransportError) as ctx:
                    self.client(server.url).user_has_permission("john", "read")
                self.assertEqual(ctx.exception.status, 200)


class RetryTest(FakeTestCase):
    FAILURES = [("503", reply(503, '{"message":"down"}')), ("502", reply(502, "bad")), ("504", reply(504, "")),
                ("429", reply(429, "")), ("dropped connection", DROP)]

    def test_idempotent_requests_are_retried_then_succeed(self):
        calls = [
            ("GET user_has_permission", lambda c: c.user_has_permission("john", "read"), CHECK_OK),
            ("GET list_roles", lambda c: c.list_roles(), ROLES_OK),
            ("DELETE remove_membership", lambda c: c.remove_membership("john", "admin"), YES),
        ]
        for fname, failure in self.FAILURES:
            for cname, call, body in calls:
                with self.subTest(failure=fname, call=cname):
                    import json

                    server = self.fake(fail_first(2, failure, reply(200, body)))
                    got = call(self.client(server.url, max_retries=2))
                    self.assertEqual(got, json.loads(body))
                    self.assertEqual(server.hits, 3, "2 failures then 1 success")

    def test_post_is_never_retried(self):
        posts = [
            ("create_role", ("admin",)),
            ("add_permission", ("admin", "read")),
            ("add_membership", ("john", "admin")),
            ("add_role_parent", ("a", "b")),
        ]
        for fname, failure in self.FAILURES:
            for name, args in posts:
                with self.subTest(failure=fname, method=name):
                    server = self.fake(fail_first(1, failure, reply(200, YES)))
                    c = self.client(server.url, max_retries=5)
                    with self.assertRaises(AuthTransportError) as ctx:
                        getattr(c, name)(*args)
                    self.assertEqual(server.hits, 1, "POST sent once")
                    want = None if failure == DROP else failure[0]
                    self.assertEqual(ctx.exception.status, want)

    def test_other_statuses_are_not_retried(self):
        for status in (400, 401, 403, 404, 409, 500, 501):
            with self.subTest(status=status):
                server = self.fake(lambda n, req, s=status: reply(s, '{"message":"no"}'))
                with self.assertRaises(AuthTransportError) as ctx:
                    self.client(server.url, max_retries=3).list_roles()
                self.assertEqual((ctx.exception.status, server.hits), (status, 1))

    def test_retries_are_bounded(self):
        for max_retries, hits in ((0, 1), (1, 2), (3, 4)):
            with self.subTest(max_retries=max_retries):
                server = self.fake(lambda n, req: reply(503, '{"message":"down"}'))
                c = self.client(server.url, max_retries=max_retries, circuit_breaker_enabled=False)
                with self.assertRaises(AuthTransportError) as ctx:
                    c.list_roles()
                self.assertEqual(ctx.exception.status, 503)
                self.assertEqual(ctx.exception.body, {"message": "down"})
                self.assertEqual(server.hits, hits)

    def test_connection_refused_is_retried_for_get_only(self):
        from unittest import mock

        import urllib3.connection
        from support import closed_port_url

        dials = []
        real = urllib3.connection.HTTPConnection._new_conn

        def counting(conn):
            dials.append(1)
            return real(conn)

        c = self.client(closed_port_url(), max_retries=2, circuit_breaker_enabled=False)
        with mock.patch.object(urllib3.connection.HTTPConnection, "_new_conn", counting):
            for name, call, want in (("POST", lambda: c.create_role("admin"), 1),
                                     ("DELETE", lambda: c.delete_role("admin"), 3),
                                     ("GET", lambda: c.list_roles(), 3)):
                with self.subTest(method=name):
                    dials.clear()
                    with self.assertRaises(AuthTransportError) as ctx:
                        call()
                    self.assertIsNone(ctx.exception.status)
                    self.assertEqual(len(dials), want, "connection attempts")

    def test_retry_after_is_honoured(self):
        server = self.fake(fail_first(1, reply(503, "", {"Retry-After": "1"}), reply(200, ROLES_OK)))
        start = time.monotonic()
        self.client(server.url).list_roles()
        took = time.monotonic() - start
        self.assertGreaterEqual(took, 0.95, "waited the Retry-After")
        self.assertEqual(server.hits, 2)

    def test_a_retry_after_too_long_is_not_waited_for(self):
        server = self.fake(lambda n, req: reply(429, '{"message":"slow down"}', {"Retry-After": "120"}))
        start = time.monotonic()
        with self.assertRaises(AuthTransportError) as ctx:
            self.client(server.url, max_retry_after=10).list_roles()
        self.assertLess(time.monotonic() - start, 1.0)
        self.assertEqual((ctx.exception.status, ctx.exception.body), (429, {"message": "slow down"}))
        self.assertEqual(server.hits, 1)

    def test_backoff_is_full_jitter_under_an_exponential_ceiling(self):
        from auth.client import _Retry

        r = _Retry(total=10, backoff_factor=0.1, backoff_cap=0.5)
        self.assertEqual(r.get_backoff_time(), 0)
        for n, ceiling in ((1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (8, 0.5)):
            r2 = r.new(history=tuple(object() for _ in range(n)))
            draws = [r2.get_backoff_time() for _ in range(2000)]
            self.assertTrue(all(0 <= d <= ceiling for d in draws), "within [0, %s]" % ceiling)
            self.assertLess(min(draws), ceiling / 4)
            self.assertGreater(max(draws), ceiling * 3 / 4)
            self.assertEqual(r2.backoff_cap, 0.5, "new() keeps the cap")


class TimeoutTest(FakeTestCase):
    def test_timeout_raises_and_get_is_retried(self):
        for name, call, hits in (("GET", lambda c: c.user_has_permission("john", "read"), 3),
                                 ("POST", lambda c: c.create_role("admin"), 1)):
            with self.subTest(method=name):
                server = self.fake(lambda n, req: HANG)
                c = self.client(server.url, timeout=0.2, max_retries=2)
                start = time.monotonic()
                with self.assertRaises(AuthTransportError) as ctx:
                    call(c)
                self.assertIsNone(ctx.exception.status)
                self.assertLess(time.monotonic() - start, hits * 0.2 + 2)
                self.assertEqual(server.hits, hits)


class PoolTest(FakeTestCase):
    def test_pool_settings_are_applied(self):
        server = self.fake(lambda n, req: reply(200, CHECK_OK))
        c = self.client(server.url, pool_connections=3, pool_maxsize=7)
        self.assertEqual(c._http.connection_pool_kw["maxsize"], 7)
        self.assertEqual(c._http.pools._maxsize, 3)
        c.user_has_permission("john", "read")
        pool = c._http.connection_from_url(server.url)
        self.assertEqual(pool.pool.maxsize, 7)

    def test_connections_are_reused(self):
        server = self.fake(lambda n, req: reply(200, CHECK_OK))
        c = self.client(server.url)
        for _ in range(10):
            c.user_has_permission("john", "read")
        self.assertEqual(server.connections, 1)

    def test_pool_maxsize_bounds_the_kept_connections(self):
        gate = threading.Barrier(4, timeout=10)

        def handler(n, req):
            if n <= 4:
                gate.wait()  # 4 requests in flight at once
            return reply(200, CHECK_OK)

        server = self.fake(handler)
        c = self.client(server.url, pool_maxsize=2)
        threads = [threading.Thread(target=c.user_has_permission, args=("john", "read")) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        self.assertEqual(server.connections, 4)
        for _ in range(6):
            c.user_has_permission("john", "read")
        # Only pool_maxsize connections were kept: the others were closed.
        self.assertEqual(server.connections, 4, "later calls reuse kept connections")
        pool = c._http.connection_from_url(server.url)
        kept = sum(1 for conn in list(pool.pool.queue) if conn is not None and conn.sock is not None)
        self.assertLessEqual(kept, 2)


class BreakerTest(FakeTestCase):
    def test_counts_only_service_failures(self):
        cases = [("500", reply(500), True), ("502", reply(502), True), ("503", reply(503), True),
                 ("429", reply(429), True), ("dropped connection", DROP, True),
                 ("400", reply(400), False), ("401", reply(401), False), ("403", reply(403), False),
                 ("404", reply(404), False), ("409", reply(409), False)]
        for name, answer, trips in cases:
            with self.subTest(answer=name):
                server = self.fake(lambda n, req, a=answer: a)
                c = self.client(server.url, max_retries=0, circuit_breaker_threshold=3, circuit_breaker_timeout=60)
                for i in range(1, 11):
                    with self.assertRaises(AuthTransportError) as ctx:
                        c.list_roles()
                    self.assertEqual(isinstance(ctx.exception, CircuitOpenError), trips and i > 3, "call %d" % i)
                self.assertEqual(server.hits, 3 if trips else 10)
                self.assertEqual(c.circuit_breaker.state, "open" if trips else "closed")

    def poll(self, what, fn, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            result = fn()
            if result is not None:
                return result
            if time.monotonic() > deadline:
                self.fail("%s: not within %ss" % (what, timeout))
            time.sleep(0.005)

    def test_opens_then_recovers_through_half_open(self):
        answer = [reply(503)]
        server = self.fake(lambda n, req: answer[0])
        c = self.client(server.url, max_retries=0, circuit_breaker_threshold=2, circuit_breaker_timeout=0.2)
        for _ in range(2):
            with self.assertRaises(AuthTransportError) as ctx:
                c.ping()
            self.assertNotIsInstance(ctx.exception, CircuitOpenError)
        opened = time.monotonic()
        with self.assertRaises(CircuitOpenError) as ctx:
            c.ping()
        self.assertIsNone(ctx.exception.status)
        self.assertEqual(server.hits, 2)

        def probe():
            try:
                c.ping()
            except CircuitOpenError:
                return None
            except AuthTransportError as e:
                return e
            return "ok"

        # Half-open while the service still fails: the probe fails and the
        # breaker opens again.
        err = self.poll("half-open probe", probe)
        self.assertGreaterEqual(time.monotonic() - opened, 0.18)
        self.assertIsInstance(err, AuthTransportError)
        self.assertEqual((err.status, server.hits), (503, 3))
        self.assertEqual(c.circuit_breaker.state, "open")
        with self.assertRaises(CircuitOpenError):
            c.ping()

        # The service recovers: the next probe closes the breaker.
        answer[0] = reply(200, '{"message":"PONG"}')
        self.assertEqual(self.poll("recovery", probe), "ok")
        self.assertEqual(c.circuit_breaker.state, "closed")
        for _ in range(3):
            self.assertEqual(c.ping(), {"message": "PONG"})
        self.assertEqual(server.hits, 7)

    def test_is_per_instance(self):
        server = self.fake(lambda n, req: reply(503))
        a = self.client(server.url, max_retries=0, circuit_breaker_threshold=1)
        b = self.client(server.url, max_retries=0, circuit_breaker_threshold=1)
        with self.assertRaises(AuthTransportError):
            a.ping()
        self.assertEqual((a.circuit_breaker.state, b.circuit_breaker.state), ("open", "closed"))
        with self.assertRaises(AuthTransportError) as ctx:
            b.ping()
        self.assertNotIsInstance(ctx.exception, CircuitOpenError)

    def test_can_be_disabled(self):
        server = self.fake(lambda n, req: reply(503))
        c = self.client(server.url, max_retries=0, circuit_breaker_enabled=False)
        self.assertIsNone(c.circuit_breaker)
        for _ in range(10):
            with self.assertRaises(AuthTransportError) as ctx:
                c.ping()
            self.assertNotIsInstance(ctx.exception, CircuitOpenError)
        self.assertEqual(server.hits, 10)

    def test_is_thread_safe(self):
        now = [0.0]
        b = CircuitBreaker(failure_threshold=50, recovery_timeout=10, clock=lambda: now[0])
        start = threading.Barrier(20)

        def fail_many():
            start.wait()
            for _ in range(10):
                try:
                    b.acquire()
                except CircuitOpenError:
                    continue
                b.release(False)

        threads = [threading.Thread(target=fail_many) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(b.state, "open")

        # Half-open: of many concurrent callers exactly one is let through.
        now[0] = 11.0
        admitted = []
        lock = threading.Lock()
        gate = threading.Barrier(20)

        def try_acquire():
            gate.wait()
            try:
                b.acquire()
            except CircuitOpenError:
                return
            with lock:
                admitted.append(1)

        threads = [threading.Thread(target=try_acquire) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(admitted), 1)
        b.release(True)
        self.assertEqual(b.state, "closed")

    def test_an_interrupted_probe_frees_the_half_open_slot(self):
        now = [0.0]
        b = CircuitBreaker(failure_threshold=1, recovery_timeout=1, clock=lambda: now[0])
        b.acquire()
        b.release(False)
        now[0] = 2.0
        b.acquire()
        b.release(None)  # neither success nor failure
        self.assertEqual(b.state, "half_open")
        b.acquire()  # a new probe is admitted
        b.release(True)
        self.assertEqual(b.state, "closed")


class PackagingTest(unittest.TestCase):
    def test_version_matches_pyproject(self):
        sys.path.insert(0, os.path.join(ROOT, "_build"))
        try:
            import auth_client_build
        finally:
            sys.path.pop(0)
        self.assertEqual(auth_client_build._load_project()["version"], auth.__version__)

    def test_fallback_toml_reader(self):
        sys.path.insert(0, os.path.join(ROOT, "_build"))
        try:
            import auth_client_build
        finally:
            sys.path.pop(0)
        with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
            text = f.read().decode("utf-8")
        got = auth_client_build._parse_project_table(text)
        self.assertEqual((got["name"], got["version"], got["dependencies"]),
                         ("auth-client", auth.__version__, ["urllib3>=1.26"]))
        try:
            import tomllib
        except ImportError:  # Python < 3.11: the fallback is all there is
            return
        self.assertEqual(got, tomllib.loads(text)["project"])

    def test_builds_an_installable_wheel(self):
        import tempfile
        import zipfile

        sys.path.insert(0, os.path.join(ROOT, "_build"))
        try:
            import auth_client_build
        finally:
            sys.path.pop(0)
        with tempfile.TemporaryDirectory() as d:
            name = auth_client_build.build_wheel(d)
            self.assertEqual(name, "auth_client-%s-py3-none-any.whl" % auth.__version__)
            with zipfile.ZipFile(os.path.join(d, name)) as zf:
                names = set(zf.namelist())
                info = "auth_client-%s.dist-info/" % auth.__version__
                self.assertTrue({"auth/__init__.py", "auth/client.py", info + "METADATA", info + "RECORD"} <= names)
                metadata = zf.read(info + "METADATA").decode()
                self.assertIn("Requires-Dist: urllib3>=1.26", metadata)
                record = zf.read(info + "RECORD").decode()
                self.assertIn("auth/client.py,sha256=", record)


if __name__ == "__main__":
    unittest.main()
