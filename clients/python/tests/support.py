"""Helpers of the client's tests: a scripted HTTP server and the method
table."""

import os
import socket
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DROP = "drop"  # close the connection without an answer
HANG = "hang"  # answer nothing until the server is closed

#: Every public method of the client: (name, args, HTTP method, path).
METHODS = [
    ("ping", (), "GET", "/ping"),
    ("create_role", ("admin",), "POST", "/api/role/admin"),
    ("delete_role", ("admin",), "DELETE", "/api/role/admin"),
    ("list_roles", (), "GET", "/api/roles"),
    ("add_permission", ("admin", "read"), "POST", "/api/permission/admin/read"),
    ("remove_permission", ("admin", "read"), "DELETE", "/api/permission/admin/read"),
    ("has_permission", ("admin", "read"), "GET", "/api/permission/admin/read"),
    ("add_membership", ("john", "admin"), "POST", "/api/membership/john/admin"),
    ("remove_membership", ("john", "admin"), "DELETE", "/api/membership/john/admin"),
    ("has_membership", ("john", "admin"), "GET", "/api/membership/john/admin"),
    ("user_has_permission", ("john", "read"), "GET", "/api/has_permission/john/read"),
    ("get_user_permissions", ("john",), "GET", "/api/user_permissions/john"),
    ("get_role_permissions", ("admin",), "GET", "/api/role_permissions/admin"),
    ("get_user_roles", ("john",), "GET", "/api/user_roles/john"),
    ("get_role_members", ("admin",), "GET", "/api/members/admin"),
    ("which_roles_can", ("read",), "GET", "/api/which_roles_can/read"),
    ("which_users_can", ("read",), "GET", "/api/which_users_can/read"),
    ("get_users_for_workflow", ("read",), "GET", "/api/workflow/users/read"),
    ("check_user_workflow_permission", ("john", "read"), "GET", "/api/workflow/user/john/can_run/read"),
    ("get_role_parents", ("admin",), "GET", "/api/role/admin/parents"),
    ("add_role_parent", ("admin", "base"), "POST", "/api/role/admin/parents/base"),
    ("remove_role_parent", ("admin", "base"), "DELETE", "/api/role/admin/parents/base"),
    ("get_audit", (), "GET", "/api/audit"),
]


def reply(status, body=b"{}", headers=None):
    """An answer for FakeServer."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    return status, dict(headers or {}), body


class FakeServer:
    """An HTTP/1.1 server in a thread. ``handler(n, request)`` gets the
    1-based number of the request and returns ``reply(...)``, DROP or HANG."""

    def __init__(self, handler):
        self.handler = handler
        self.lock = threading.Lock()
        self.hits = 0
        self.connections = 0
        self.requests = []  # (method, raw path, headers)
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def setup(self):
                super().setup()
                with outer.lock:
                    outer.connections += 1

            def _serve(self):
                with outer.lock:
                    outer.hits += 1
                    n = outer.hits
                    outer.requests.append((self.command, self.path, dict(self.headers)))
                    handler = outer.handler
                action = handler(n, self)
                if action == DROP:
                    self.close_connection = True
                    return
                if action == HANG:
                    outer.release.wait(10)
                    self.close_connection = True
                    return
                status, headers, body = action
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_DELETE = do_HEAD = do_PUT = _serve

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self.thread.start()

    @property
    def url(self):
        host, port = self.httpd.server_address[:2]
        return "http://%s:%d" % (host, port)

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def fail_first(n, fail, ok):
    """A handler answering ``fail`` to the first n requests, then ``ok``."""
    return lambda i, req: fail if i <= n else ok


def closed_port_url():
    """The URL of a port where nothing listens (it was just released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "http://127.0.0.1:%d" % port


def require_services():
    """True when a missing service must fail the tests instead of skipping
    them (AUTH_TEST_REQUIRE_SERVICES=1, as in CI)."""
    return os.environ.get("AUTH_TEST_REQUIRE_SERVICES") == "1"


def live_url_or_skip(testcase):
    url = os.environ.get("AUTH_TEST_URL")
    if not url:
        if require_services():
            testcase.fail("AUTH_TEST_URL is not set and AUTH_TEST_REQUIRE_SERVICES=1")
        raise unittest.SkipTest("AUTH_TEST_URL is not set: no auth-server to test against")
    return url
