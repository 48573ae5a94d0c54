"""Tests of the client against a running auth-server at $AUTH_TEST_URL.

Each test uses a fresh client key, so a new, empty tenant. Without
AUTH_TEST_URL the tests are skipped, or fail when
AUTH_TEST_REQUIRE_SERVICES=1.
"""

import os
import re
import subprocess
import sys
import unittest
import uuid

from support import live_url_or_skip

from auth import AuthTransportError, Client, EnhancedAuthClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?$")


def envelope(answer):
    """An envelope answer without its timestamp, which is checked."""
    answer = dict(answer)
    ts = answer.pop("timestamp")
    if not TIMESTAMP.match(ts):
        raise AssertionError("bad timestamp %r" % ts)
    return answer


def ok(data, message):
    return {"code": 200, "data": data, "message": message, "success": True}


class LiveTest(unittest.TestCase):
    def setUp(self):
        self.url = live_url_or_skip(self)
        self.key = str(uuid.uuid4())
        self.c = EnhancedAuthClient(self.key, self.url, timeout=10)
        self.addCleanup(self.c.close)

    def test_every_method(self):
        c = self.c
        self.assertEqual(c.ping(), {"message": "PONG"})
        self.assertEqual(c.list_roles(), {"result": []})
        for role in ("admin", "editor", "admin"):
            self.assertEqual(c.create_role(role), {"result": True})
        self.assertEqual(c.list_roles(), {"result": [{"description": None, "role": "admin"},
                                                     {"description": None, "role": "editor"}]})
        self.assertEqual(c.add_permission("admin", "manage_users"), {"result": True})
        self.assertEqual(c.add_permission("admin", "read"), {"result": True})
        self.assertEqual(c.add_permission("editor", "read"), {"result": True})
        self.assertEqual(c.add_permission("ghost", "read"), {"result": False})
        self.assertEqual(c.has_permission("admin", "manage_users"), {"result": True})
        self.assertEqual(c.has_permission("editor", "manage_users"), {"result": False})
        got = envelope(c.get_role_permissions("admin"))
        got["data"] = sorted(got["data"], key=lambda d: d["name"])
        self.assertEqual(got, ok([{"name": "manage_users"}, {"name": "read"}], "Retrieved permissions for role 'admin'"))

        self.assertEqual(c.add_membership("john_doe", "admin"), {"result": True})
        self.assertEqual(c.add_membership("jane", "editor"), {"result": True})
        self.assertEqual(c.add_membership("john@example.com", "editor"), {"result": True})
        self.assertEqual(c.add_membership("bob", "ghost"), {"result": False})
        self.assertEqual(envelope(c.has_membership("john_doe", "admin")),
                         ok({"has_permission": True}, "Membership check for user 'john_doe' and group 'admin' completed"))
        self.assertEqual(envelope(c.has_membership("jane", "admin"))["data"], {"has_permission": False})
        self.assertEqual(envelope(c.user_has_permission("john_doe", "manage_users")),
                         ok({"has_permission": True},
                            "Permission check for user 'john_doe' and permission 'manage_users' completed"))
        self.assertEqual(envelope(c.user_has_permission("jane", "manage_users"))["data"], {"has_permission": False})
        self.assertEqual(envelope(c.user_has_permission("john@example.com", "read"))["data"], {"has_permission": True})
        got = envelope(c.get_user_permissions("john_doe"))
        got["data"]["permissions"].sort(key=lambda d: d["name"])
        self.assertEqual(got, ok({"count": 2, "permissions": [{"name": "manage_users"}, {"name": "read"}]},
                                 "Retrieved permissions for user 'john_doe'"))
        self.assertEqual(c.get_user_roles("john_doe"), {"result": [{"role": "admin", "user": "john_doe"}]})
        got = c.get_role_members("editor")
        self.assertEqual(sorted(got["result"], key=lambda d: d["user"]),
                         [{"role": "editor", "user": "jane"}, {"role": "editor", "user": "john@example.com"}])
        got = c.which_roles_can("read")
        self.assertEqual(sorted(got["result"], key=lambda d: d["role"]), [{"role": "admin"}, {"role": "editor"}])
        members = [{"role": "admin", "user": "john_doe"}, {"role": "editor", "user": "jane"},
                   {"role": "editor", "user": "john@example.com"}]
        key = lambda d: (d["role"], d["user"])  # noqa: E731
        self.assertEqual(sorted(c.which_users_can("read")["result"], key=key), members)
        got = envelope(c.get_users_for_workflow("read"))
        got["data"]["members"].sort(key=key)
        self.assertEqual(got, ok({"count": 3, "members": members}, "Retrieved users who can run workflow 'read'"))
        self.assertEqual(envelope(c.check_user_workflow_permission("jane", "read")),
                         ok({"has_permission": True},
                            "Workflow permission check for user 'jane' and workflow 'read' completed"))
        self.assertEqual(envelope(c.check_user_workflow_permission("jane", "manage_users"))["data"],
                         {"has_permission": False})

        self.assertEqual(c.add_role_parent("editor", "admin"), {"result": True})
        self.assertEqual(c.get_role_parents("editor"), {"result": [{"parent": "admin", "role": "editor"}]})
        self.assertEqual(envelope(c.user_has_permission("jane", "manage_users"))["data"], {"has_permission": True})
        with self.assertRaises(AuthTransportError) as ctx:
            c.add_role_parent("admin", "editor")
        self.assertEqual(ctx.exception.status, 400)
        self.assertEqual(ctx.exception.body["message"], "Role inheritance would form a cycle.")
        self.assertEqual(c.remove_role_parent("editor", "admin"), {"result": True})
        self.assertEqual(c.get_role_parents("editor"), {"result": []})

        self.assertEqual(c.remove_permission("admin", "read"), {"result": True})
        self.assertEqual(c.has_permission("admin", "read"), {"result": False})
        self.assertEqual(c.remove_membership("john_doe", "admin"), {"result": True})
        self.assertEqual(envelope(c.has_membership("john_doe", "admin"))["data"], {"has_permission": False})
        self.assertEqual(envelope(c.delete_role("editor")), ok({"result": True}, "Role 'editor' deletion completed"))
        self.assertEqual(envelope(c.delete_role("editor"))["data"], {"result": False})
        self.assertEqual(c.list_roles(), {"result": [{"description": None, "role": "admin"}]})

        page = envelope(c.get_audit(action="CREATE_ROLE", limit=1))
        self.assertEqual((page["code"], page["message"]), (200, "Audit trail retrieved"))
        entries = page["data"]["entries"]
        self.assertEqual((len(entries), entries[0]["action"], page["data"]["limit"]), (1, "CREATE_ROLE", 1))
        self.assertIsNotNone(page["data"]["next_cursor"])
        older = envelope(c.get_audit(action="CREATE_ROLE", limit=1, cursor=page["data"]["next_cursor"]))
        self.assertLess(older["data"]["entries"][0]["seq"], entries[0]["seq"])

    def test_names_are_escaped(self):
        c = self.c
        c.create_role("ops")
        for user in ("a.b+c@example.com", "..", "."):
            with self.subTest(user=user):
                self.assertEqual(c.add_membership(user, "ops"), {"result": True})
                self.assertEqual(c.get_user_roles(user), {"result": [{"role": "ops", "user": user}]})

    def test_a_bad_name_raises_with_the_services_answer(self):
        with self.assertRaises(AuthTransportError) as ctx:
            self.c.create_role("bad.name")
        self.assertEqual(ctx.exception.status, 400)
        self.assertEqual(
            ctx.exception.body["message"],
            "Invalid role name: bad.name. Role names must be 1-64 characters long and contain only alphanumeric, underscore, and hyphen.",
        )
        self.assertEqual(self.c.circuit_breaker.state, "closed", "a 400 is not a service failure")

    def test_a_refused_credential_raises(self):
        for key, status in (("", 401), ("not-a-uuid", 400)):
            with self.subTest(key=key):
                with Client(key, self.url) as c, self.assertRaises(AuthTransportError) as ctx:
                    c.user_has_permission("john_doe", "read")
                self.assertEqual(ctx.exception.status, status)

    def test_quickstart_example_prints_a_positive_answer(self):
        script = os.path.join(ROOT, "examples", "quickstart.py")
        env = dict(os.environ, AUTH_URL=self.url, AUTH_KEY=str(uuid.uuid4()))
        env["PYTHONPATH"] = ROOT
        proc = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("john_doe may manage_users: True", proc.stdout)
        # The URL and key may also be given as arguments.
        proc = subprocess.run([sys.executable, script, self.url, str(uuid.uuid4())], env=dict(env, AUTH_URL="http://127.0.0.1:1"),
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(proc.stdout.rstrip().endswith("john_doe may manage_users: True"), proc.stdout)


if __name__ == "__main__":
    unittest.main()
