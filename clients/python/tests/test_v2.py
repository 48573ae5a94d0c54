"""Tests of the API v2 client (client.v2) against scripted HTTP servers:
routes and bodies, lazy pagination, reasons, the retry policy, batch
splitting."""

import json
import unittest
from urllib.parse import parse_qs, urlsplit

from support import FakeServer, fail_first, reply

from auth import MAX_BATCH, AuthTransportError, EnhancedAuthClient

KEY = "3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"


def ok(data):
    return json.dumps({"code": 200, "data": data, "message": "m", "success": True, "timestamp": "t"})


def err(code, reason, **details):
    details["reason"] = reason
    return json.dumps({"code": code, "details": details, "message": "msg", "success": False, "timestamp": "t"})


def body_of(req):
    n = int(req.headers.get("Content-Length") or 0)
    return req.rfile.read(n).decode("utf-8") if n else ""


class V2TestCase(unittest.TestCase):
    def fake(self, handler):
        server = FakeServer(handler)
        self.addCleanup(server.close)
        return server

    def v2(self, url, **kwargs):
        kwargs.setdefault("backoff_factor", 0.001)
        kwargs.setdefault("timeout", 5)
        c = EnhancedAuthClient(KEY, url, **kwargs)
        self.addCleanup(c.close)
        return c.v2


class RoutesTest(V2TestCase):
    def test_every_method_sends_its_request_and_reads_its_answer(self):
        cases = [
            ("check", ("a b", "r/x"), {"user": "a b", "permission": "r/x", "allowed": True},
             "GET", "/api/v2/check?user=a+b&permission=r%2Fx", "", True),
            ("explain", ("alice", "read"),
             {"user": "alice", "permission": "read", "allowed": False, "explanation": {"path": None, "rule": None}},
             "GET", "/api/v2/check?user=alice&permission=read&explain=true", "",
             {"user": "alice", "permission": "read", "allowed": False, "explanation": {"path": None, "rule": None}}),
            ("check_batch", ([("a", "r"), {"user": "b", "permission": "r"}],),
             {"results": [{"user": "a", "permission": "r", "allowed": True}, {"user": "b", "permission": "r", "allowed": False}]},
             "POST", "/api/v2/check", '{"checks":[{"user":"a","permission":"r"},{"user":"b","permission":"r"}]}',
             [{"user": "a", "permission": "r", "allowed": True}, {"user": "b", "permission": "r", "allowed": False}]),
            ("create_role", ("editor", "Reads"), {"name": "editor", "description": "Reads"},
             "POST", "/api/v2/roles", '{"name":"editor","description":"Reads"}', {"name": "editor", "description": "Reads"}),
            ("create_role", ("editor",), {"name": "editor", "description": None},
             "POST", "/api/v2/roles", '{"name":"editor"}', {"name": "editor", "description": None}),
            ("put_role", ("a/b",), {"name": "a/b", "description": None, "created": True},
             "PUT", "/api/v2/roles/a%2Fb", "", True),
            ("put_role", ("editor", None), {"name": "editor", "description": None, "created": False},
             "PUT", "/api/v2/roles/editor", '{"description":null}', False),
            ("put_role", ("editor", "Reads"), {"name": "editor", "description": "Reads", "created": False},
             "PUT", "/api/v2/roles/editor", '{"description":"Reads"}', False),
            ("get_role", ("editor",), {"name": "editor", "description": None, "permissions": 1, "members": 2, "parents": []},
             "GET", "/api/v2/roles/editor", "",
             {"name": "editor", "description": None, "permissions": 1, "members": 2, "parents": []}),
            ("delete_role", ("editor",), {"role": "editor", "deleted": True}, "DELETE", "/api/v2/roles/editor", "", True),
            ("put_permission", ("editor", "read"), {"role": "editor", "permission": "read", "created": True},
             "PUT", "/api/v2/roles/editor/permissions/read", "", True),
            ("delete_permission", ("editor", "read"), {"role": "editor", "permission": "read", "deleted": False},
             "DELETE", "/api/v2/roles/editor/permissions/read", "", False),
            ("put_member", ("editor", "bob@x"), {"role": "editor", "user": "bob@x", "created": True},
             "PUT", "/api/v2/roles/editor/members/bob%40x", "", True),
            ("delete_member", ("editor", "bob"), {"role": "editor", "user": "bob", "deleted": True},
             "DELETE", "/api/v2/roles/editor/members/bob", "", True),
            ("put_parent", ("editor", "staff"), {"role": "editor", "parent": "staff", "created": False},
             "PUT", "/api/v2/roles/editor/parents/staff", "", False),
            ("delete_parent", ("editor", "staff"), {"role": "editor", "parent": "staff", "deleted": True},
             "DELETE", "/api/v2/roles/editor/parents/staff", "", True),
            ("delete_user", ("alice",), {"user": "alice", "memberships_removed": 3},
             "DELETE", "/api/v2/users/alice", "", 3),
            ("export_policy", (), {"format": "casbin-csv", "policy": "p\n", "roles": 1, "rules": 1, "version": 2},
             "GET", "/api/v2/policy/export", "", {"format": "casbin-csv", "policy": "p\n", "roles": 1, "rules": 1, "version": 2}),
            ("import_policy", ("p\n", True, True), {"mode": "merge", "dry_run": True},
             "POST", "/api/v2/policy/import?dry_run=true&mode=merge", '{"policy":"p\\n"}', {"mode": "merge", "dry_run": True}),
            ("import_policy", ("",), {"mode": "replace", "dry_run": False},
             "POST", "/api/v2/policy/import", '{"policy":""}', {"mode": "replace", "dry_run": False}),
        ]
        for name, args, data, method, path, body, want in cases:
            with self.subTest(method=name, args=args):
                seen = []

                def handler(n, req, data=data, seen=seen):
                    seen.append((req.command, req.path, body_of(req), req.headers.get("Content-Type")))
                    return reply(200, ok(data))

                v2 = self.v2(self.fake(handler).url)
                self.assertEqual(getattr(v2, name)(*args), want)
                self.assertEqual(len(seen), 1)
                got_method, got_path, got_body, ctype = seen[0]
                self.assertEqual((got_method, got_path, got_body), (method, path, body))
                if body:
                    self.assertEqual(ctype, "application/json")

    def test_lists_yield_their_items(self):
        cases = [
            ("roles", (), "/api/v2/roles", [{"name": "admin", "description": None}], [{"name": "admin", "description": None}]),
            ("permissions", ("editor",), "/api/v2/roles/editor/permissions", [{"name": "read"}], ["read"]),
            ("members", ("editor",), "/api/v2/roles/editor/members", [{"user": "alice"}], ["alice"]),
            ("parents", ("editor",), "/api/v2/roles/editor/parents", [{"name": "staff"}], ["staff"]),
            ("user_roles", ("alice",), "/api/v2/users/alice/roles",
             [{"name": "staff", "inherited": True, "via": "editor"}], [{"name": "staff", "inherited": True, "via": "editor"}]),
            ("user_permissions", ("alice",), "/api/v2/users/alice/permissions",
             [{"name": "read", "roles": ["staff"]}], [{"name": "read", "roles": ["staff"]}]),
            ("permission_roles", ("read",), "/api/v2/permissions/read/roles",
             [{"name": "staff", "inherited": False}], [{"name": "staff", "inherited": False}]),
            ("permission_users", ("read",), "/api/v2/permissions/read/users",
             [{"user": "alice", "roles": ["editor"]}], [{"user": "alice", "roles": ["editor"]}]),
        ]
        for name, args, path, items, want in cases:
            with self.subTest(method=name):
                server = self.fake(lambda n, req, items=items: reply(200, ok({"items": items, "next_cursor": None})))
                v2 = self.v2(server.url)
                self.assertEqual(list(getattr(v2, name)(*args)), want)
                self.assertEqual([(m, p) for m, p, _ in server.requests], [("GET", path)])


def pages(n, req):
    """Three pages of names a..e, two a page; page k answers cursor ck."""
    cursor = parse_qs(urlsplit(req.path).query).get("cursor", [""])[0]
    answers = {
        "": {"items": [{"name": "a"}, {"name": "b"}], "next_cursor": "c1"},
        "c1": {"items": [{"name": "c"}, {"name": "d"}], "next_cursor": "c2"},
        "c2": {"items": [{"name": "e"}], "next_cursor": None},
    }
    if cursor not in answers:
        return reply(400, err(400, "invalid_cursor", parameter="cursor"))
    return reply(200, ok(answers[cursor]))


class PaginationTest(V2TestCase):
    def test_next_page_is_fetched_only_when_iterated_past_the_current_one(self):
        server = self.fake(pages)
        v2 = self.v2(server.url)
        it = v2.permissions("editor", page_size=2)
        self.assertEqual(server.hits, 0, "no request before the iteration starts")
        self.assertEqual(next(it), "a")
        self.assertEqual(next(it), "b")
        self.assertEqual(server.hits, 1, "the last item of page 1 needs no second request")
        self.assertEqual(next(it), "c")
        self.assertEqual(server.hits, 2)
        self.assertEqual(list(it), ["d", "e"])
        self.assertEqual(
            [p for _, p, _ in server.requests],
            [
                "/api/v2/roles/editor/permissions?limit=2",
                "/api/v2/roles/editor/permissions?limit=2&cursor=c1",
                "/api/v2/roles/editor/permissions?limit=2&cursor=c2",
            ],
        )

    def test_no_page_size_lets_the_service_choose(self):
        server = self.fake(pages)
        next(self.v2(server.url).parents("editor"))
        self.assertEqual(server.requests[0][1], "/api/v2/roles/editor/parents")

    def test_an_error_on_a_later_page_raises_after_the_earlier_items(self):
        def handler(n, req):
            if n == 1:
                return reply(200, ok({"items": [{"name": "a"}], "next_cursor": "gone"}))
            return reply(404, err(404, "role_not_found", role="editor"))

        got = []
        with self.assertRaises(AuthTransportError) as cm:
            for name in self.v2(self.fake(handler).url).parents("editor"):
                got.append(name)
        self.assertEqual(got, ["a"])
        self.assertEqual((cm.exception.status, cm.exception.reason), (404, "role_not_found"))
        self.assertEqual(cm.exception.details["role"], "editor")

    def test_a_repeated_cursor_or_a_missing_items_field_is_an_error(self):
        for data in ({"items": [{"name": "a"}], "next_cursor": "same"}, {"next_cursor": None}):
            with self.subTest(data=data):
                server = self.fake(lambda n, req, data=data: reply(200, ok(data)))
                with self.assertRaises(AuthTransportError):
                    list(self.v2(server.url).parents("editor"))
                self.assertLessEqual(server.hits, 2)


class ErrorsTest(V2TestCase):
    def test_reason_and_details(self):
        cases = [
            (409, err(409, "role_exists", role="editor"), "role_exists"),
            (400, err(400, "invalid_name", kind="role"), "invalid_name"),
            (401, err(401, "unauthenticated"), "unauthenticated"),
            (400, '{"code":400,"details":{},"message":"v1","success":false,"timestamp":"t"}', None),
            (502, "<html>bad gateway</html>", None),
        ]
        for status, body, reason in cases:
            with self.subTest(status=status, reason=reason):
                server = self.fake(lambda n, req, status=status, body=body: reply(status, body))
                with self.assertRaises(AuthTransportError) as cm:
                    self.v2(server.url, max_retries=0, circuit_breaker_enabled=False).create_role("editor")
                self.assertEqual((cm.exception.status, cm.exception.reason), (status, reason))
        self.assertIsNone(AuthTransportError("no answer").reason)

    def test_empty_names_are_refused_before_any_request(self):
        server = self.fake(lambda n, req: reply(200, ok({})))
        v2 = self.v2(server.url)
        calls = [
            lambda: v2.check("", "p"), lambda: v2.explain("u", ""), lambda: v2.check_batch([("u", "")]),
            lambda: v2.put_role(""), lambda: v2.create_role(""), lambda: v2.put_member("r", ""),
            lambda: v2.delete_user(""), lambda: v2.members(""), lambda: v2.user_roles(""),
        ]
        for i, call in enumerate(calls):
            with self.subTest(call=i):
                with self.assertRaises(ValueError):
                    call()  # generators too: at the call, not at the first next()
        self.assertEqual(server.hits, 0)

    def test_an_answer_without_the_expected_field_is_an_error(self):
        server = self.fake(lambda n, req: reply(200, ok({})))
        v2 = self.v2(server.url)
        calls = [
            lambda: v2.check("u", "p"), lambda: v2.explain("u", "p"), lambda: v2.put_role("r"),
            lambda: v2.delete_role("r"), lambda: v2.put_permission("r", "p"), lambda: v2.delete_user("u"),
            lambda: v2.check_batch([("u", "p")]), lambda: v2.export_policy(), lambda: v2.import_policy(""),
        ]
        for i, call in enumerate(calls):
            with self.subTest(call=i):
                with self.assertRaises(AuthTransportError):
                    call()

    def test_batch_results_that_do_not_answer_the_pairs_are_an_error(self):
        for results in (
            [{"user": "b", "permission": "r", "allowed": True}, {"user": "a", "permission": "r", "allowed": True}],
            [{"user": "a", "permission": "r", "allowed": True}],
            [{"user": "a", "permission": "r", "allowed": "yes"}, {"user": "b", "permission": "r", "allowed": True}],
        ):
            with self.subTest(results=results):
                server = self.fake(lambda n, req, results=results: reply(200, ok({"results": results})))
                with self.assertRaises(AuthTransportError):
                    self.v2(server.url).check_batch([("a", "r"), ("b", "r")])


class RetryPolicyTest(V2TestCase):
    def test_put_delete_get_and_the_batch_check_are_retried(self):
        cases = [
            ("put_role", ("a",), {"name": "a", "description": None, "created": True}),
            ("put_member", ("a", "u"), {"role": "a", "user": "u", "created": True}),
            ("delete_user", ("u",), {"user": "u", "memberships_removed": 0}),
            ("check", ("u", "p"), {"user": "u", "permission": "p", "allowed": False}),
            ("check_batch", ([("u", "p")],), {"results": [{"user": "u", "permission": "p", "allowed": False}]}),
        ]
        for name, args, data in cases:
            with self.subTest(method=name):
                bodies = []

                def handler(n, req, data=data, bodies=bodies):
                    bodies.append(body_of(req))
                    return fail_first(2, reply(503, err(503, "unavailable")), reply(200, ok(data)))(n, req)

                server = self.fake(handler)
                getattr(self.v2(server.url, max_retries=2), name)(*args)
                self.assertEqual(server.hits, 3)
                self.assertEqual(bodies[0], bodies[2], "each attempt sends the whole body")

    def test_create_role_and_import_are_never_retried(self):
        for name, args in (("create_role", ("a",)), ("import_policy", ("",))):
            with self.subTest(method=name):
                server = self.fake(fail_first(2, reply(503, err(503, "unavailable")), reply(200, ok({}))))
                with self.assertRaises(AuthTransportError) as cm:
                    getattr(self.v2(server.url, max_retries=2), name)(*args)
                self.assertEqual((cm.exception.status, cm.exception.reason, server.hits), (503, "unavailable", 1))


class BatchTest(V2TestCase):
    def test_a_long_batch_is_split_and_answered_in_order(self):
        sizes = []

        def handler(n, req):
            checks = json.loads(body_of(req))["checks"]
            sizes.append(len(checks))
            if len(checks) > MAX_BATCH:
                return reply(400, err(400, "batch_too_large", max=1000))
            return reply(200, ok({"results": [dict(c, allowed=c["user"].endswith("0")) for c in checks]}))

        server = self.fake(handler)
        v2 = self.v2(server.url)
        pairs = [("u%d" % i, "read") for i in range(2500)]
        results = v2.check_batch(pairs)
        self.assertEqual(sizes, [1000, 1000, 500])
        self.assertEqual([(r["user"], r["permission"]) for r in results], pairs)
        self.assertEqual([r["allowed"] for r in results], [u.endswith("0") for u, _ in pairs])
        self.assertEqual(v2.check_batch([]), [])
        self.assertEqual(server.hits, 3, "no request for no pairs")


if __name__ == "__main__":
    unittest.main()
