"""Tests of revisions, read consistency, the change feed and time-bound
memberships and grants in the API v2 client, against scripted HTTP
servers."""

import json
import threading
import unittest
from datetime import datetime, timedelta, timezone

from support import FakeServer, fail_first, reply

from auth import (
    FULL,
    MINIMIZE_LATENCY,
    AuthTransportError,
    ChangesExpiredError,
    ConsistencyUnavailableError,
    EnhancedAuthClient,
    RevisionAheadError,
    at_least,
)

KEY = "3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"


def ok(data):
    return json.dumps({"code": 200, "data": data, "message": "m", "success": True, "timestamp": "t"})


def err(code, reason, **details):
    details["reason"] = reason
    return json.dumps({"code": code, "details": details, "message": "msg", "success": False, "timestamp": "t"})


def body_of(req):
    n = int(req.headers.get("Content-Length") or 0)
    return req.rfile.read(n).decode("utf-8") if n else ""


def rev(n, status, body):
    return reply(status, body, {"X-Auth-Revision": str(n)})


LIST = ok({"items": [], "next_cursor": None, "revision": 3})


class Case(unittest.TestCase):
    def fake(self, handler):
        server = FakeServer(handler)
        self.addCleanup(server.close)
        return server

    def client(self, url, **kwargs):
        kwargs.setdefault("backoff_factor", 0.001)
        kwargs.setdefault("timeout", 5)
        c = EnhancedAuthClient(KEY, url, **kwargs)
        self.addCleanup(c.close)
        return c


class RevisionTest(Case):
    def test_last_revision_is_the_highest_a_write_committed(self):
        answers = []

        def handler(n, req):
            body_of(req)  # the connection is reused: read the whole request
            return answers[n - 1]

        server = self.fake(handler)
        c = self.client(server.url, max_retries=0, circuit_breaker_enabled=False)
        steps = [
            ("v2 put_member", rev(5, 201, ok({"role": "r", "user": "u", "created": True, "revision": 5})),
             lambda: c.v2.put_member("r", "u"), 5),
            ("a read at a later revision", rev(9, 200, ok({"user": "u", "permission": "p", "allowed": True})),
             lambda: c.v2.check("u", "p"), 5),
            ("the batch check", rev(9, 200, ok({"results": [{"user": "u", "permission": "p", "allowed": True}]})),
             lambda: c.v2.check_batch([("u", "p")]), 5),
            ("v1 add_permission", rev(7, 200, '{"result":true}'), lambda: c.add_permission("r", "p"), 7),
            ("an older revision", rev(6, 200, ok({"role": "r", "deleted": True})), lambda: c.v2.delete_role("r"), 7),
            ("a failed write", rev(11, 409, err(409, "role_exists", role="r")), lambda: c.v2.create_role("r"), 7),
        ]
        self.assertEqual(c.last_revision, 0)
        for name, answer, call, want in steps:
            with self.subTest(step=name):
                answers.append(answer)
                try:
                    call()
                except AuthTransportError:
                    pass
                self.assertEqual(c.last_revision, want)

    def test_concurrent_writes_leave_the_highest(self):
        server = self.fake(lambda n, req: rev(n, 200, '{"result":true}'))
        c = self.client(server.url)
        threads = [threading.Thread(target=c.add_permission, args=("r", "p")) for _ in range(30)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(c.last_revision, 30)

    def test_reads_state_their_revision(self):
        cases = [
            ("check_revision from data", rev(9, 200, ok({"user": "u", "permission": "p", "allowed": True, "revision": 8})),
             lambda v2: v2.check_revision("u", "p"), (True, 8)),
            ("check_revision from the header", rev(9, 200, ok({"user": "u", "permission": "p", "allowed": False})),
             lambda v2: v2.check_revision("u", "p"), (False, 9)),
            ("check_revision of an older service", reply(200, ok({"user": "u", "permission": "p", "allowed": True})),
             lambda v2: v2.check_revision("u", "p"), (True, None)),
            ("check_batch_revision", reply(200, ok({"results": [{"user": "u", "permission": "p", "allowed": True}], "revision": 2})),
             lambda v2: v2.check_batch_revision([("u", "p")]), ([{"user": "u", "permission": "p", "allowed": True}], 2)),
            ("check_batch_revision of no pairs", reply(500, "{}"), lambda v2: v2.check_batch_revision([]), ([], None)),
            ("export_policy from the header", rev(5, 200, ok({"format": "casbin-csv", "policy": "", "version": 5})),
             lambda v2: v2.export_policy()["revision"], 5),
            ("explain", reply(200, ok({"allowed": False, "explanation": {"path": None, "rule": None}, "revision": 4})),
             lambda v2: v2.explain("u", "p")["revision"], 4),
        ]
        for name, answer, call, want in cases:
            with self.subTest(case=name):
                server = self.fake(lambda n, req, answer=answer: answer)
                self.assertEqual(call(self.client(server.url).v2), want)

    def test_a_split_batch_states_the_lowest_revision(self):
        revisions = {1: 7, 2: 5}

        def handler(n, req):
            checks = json.loads(body_of(req))["checks"]
            return reply(200, ok({"results": [dict(c, allowed=True) for c in checks], "revision": revisions[n]}))

        results, revision = self.client(self.fake(handler).url).v2.check_batch_revision([("u", "p")] * 1001)
        self.assertEqual((len(results), revision), (1001, 5))


class ConsistencyTest(Case):
    def test_each_read_that_accepts_one_sends_it(self):
        cases = [
            ("check", ("u", "p"), ok({"user": "u", "permission": "p", "allowed": True}),
             "GET", "/api/v2/check?user=u&permission=p&consistency=at_least%3A7"),
            ("explain", ("u", "p"), ok({"allowed": False, "explanation": {"path": None, "rule": None}}),
             "GET", "/api/v2/check?user=u&permission=p&explain=true&consistency=at_least%3A7"),
            ("check_batch", ([("u", "p")],), ok({"results": [{"user": "u", "permission": "p", "allowed": True}]}),
             "POST", "/api/v2/check?consistency=at_least%3A7"),
            ("get_role", ("r",), ok({"name": "r"}), "GET", "/api/v2/roles/r?consistency=at_least%3A7"),
            ("export_policy", (), ok({"policy": ""}), "GET", "/api/v2/policy/export?consistency=at_least%3A7"),
            ("roles", (), LIST, "GET", "/api/v2/roles?consistency=at_least%3A7"),
            ("members", ("r",), LIST, "GET", "/api/v2/roles/r/members?consistency=at_least%3A7"),
            ("members_detailed", ("r",), LIST, "GET", "/api/v2/roles/r/members?consistency=at_least%3A7"),
            ("permissions", ("r",), LIST, "GET", "/api/v2/roles/r/permissions?consistency=at_least%3A7"),
            ("permissions_detailed", ("r",), LIST, "GET", "/api/v2/roles/r/permissions?consistency=at_least%3A7"),
            ("parents", ("r",), LIST, "GET", "/api/v2/roles/r/parents?consistency=at_least%3A7"),
            ("user_roles", ("u",), LIST, "GET", "/api/v2/users/u/roles?consistency=at_least%3A7"),
            ("user_permissions", ("u",), LIST, "GET", "/api/v2/users/u/permissions?consistency=at_least%3A7"),
            ("permission_roles", ("p",), LIST, "GET", "/api/v2/permissions/p/roles?consistency=at_least%3A7"),
            ("permission_users", ("p",), LIST, "GET", "/api/v2/permissions/p/users?consistency=at_least%3A7"),
        ]
        for name, args, answer, method, path in cases:
            for how in ("keyword", "view", "int"):
                with self.subTest(method=name, how=how):
                    server = self.fake(lambda n, req, answer=answer: reply(200, answer))
                    v2 = self.client(server.url).v2
                    if how == "keyword":
                        result = getattr(v2, name)(*args, consistency=at_least(7))
                    elif how == "int":
                        result = getattr(v2, name)(*args, consistency=7)
                    else:
                        result = getattr(v2.with_consistency("at_least:7"), name)(*args)
                    if hasattr(result, "__next__"):
                        list(result)
                    self.assertEqual([(m, p) for m, p, _ in server.requests], [(method, path)])

    def test_the_forms(self):
        for value, query in ((FULL, "full"), (MINIMIZE_LATENCY, "minimize_latency"), (at_least(0), "at_least%3A0")):
            with self.subTest(value=value):
                server = self.fake(lambda n, req: reply(200, ok({"name": "r"})))
                self.client(server.url).v2.get_role("r", consistency=value)
                self.assertEqual(server.requests[0][1], "/api/v2/roles/r?consistency=" + query)
        for bad in (-1, True, 1.5):
            with self.subTest(bad=bad):
                with self.assertRaises(ValueError):
                    at_least(bad)

    def test_other_routes_never_send_one(self):
        server = self.fake(lambda n, req: reply(200, LIST))
        v2 = self.client(server.url, session_consistency=True).v2.with_consistency(FULL)
        list(v2.workflows())
        v2.changes()
        self.assertEqual([p for _, p, _ in server.requests], ["/api/v2/workflows", "/api/v2/changes"])

    def test_session_consistency(self):
        def handler(n, req):
            if req.command == "PUT":
                return rev(42, 201, ok({"role": "editor", "user": "alice", "created": True, "revision": 42}))
            if req.path.startswith("/api/v2/check"):
                return rev(42, 200, ok({"user": "alice", "permission": "read", "allowed": True}))
            return reply(200, ok({"items": [{"user": "alice", "expires_at": None}], "next_cursor": None, "revision": 42}))

        cases = [
            ("on", {"session_consistency": True}, None, [
                "/api/v2/check?user=alice&permission=read",
                "/api/v2/roles/editor/members/alice",
                "/api/v2/check?user=alice&permission=read&consistency=at_least%3A42",
                "/api/v2/roles/editor/members?consistency=at_least%3A42",
            ]),
            ("a call's own wins", {"session_consistency": True}, FULL, [
                "/api/v2/check?user=alice&permission=read&consistency=full",
                "/api/v2/roles/editor/members/alice",
                "/api/v2/check?user=alice&permission=read&consistency=full",
                "/api/v2/roles/editor/members?consistency=full",
            ]),
            ("off", {}, None, [
                "/api/v2/check?user=alice&permission=read",
                "/api/v2/roles/editor/members/alice",
                "/api/v2/check?user=alice&permission=read",
                "/api/v2/roles/editor/members",
            ]),
        ]
        for name, kwargs, consistency, want in cases:
            with self.subTest(case=name):
                server = self.fake(handler)
                v2 = self.client(server.url, **kwargs).v2
                v2.check("alice", "read", consistency=consistency)
                v2.put_member("editor", "alice")
                v2.check("alice", "read", consistency=consistency)
                list(v2.members("editor", consistency=consistency))
                self.assertEqual([p for _, p, _ in server.requests], want)


class ErrorTest(Case):
    def test_the_contract_errors_raise_their_classes(self):
        cases = [
            (503, err(503, "consistency_unavailable"), ConsistencyUnavailableError),
            (400, err(400, "revision_ahead", revision=99, latest=12), RevisionAheadError),
            (410, err(410, "changes_expired", oldest=40), ChangesExpiredError),
            (503, err(503, "unavailable"), AuthTransportError),
            (400, err(400, "invalid_parameter", parameter="consistency"), AuthTransportError),
        ]
        for status, body, cls in cases:
            with self.subTest(cls=cls.__name__, status=status):
                server = self.fake(lambda n, req, status=status, body=body: reply(status, body))
                v2 = self.client(server.url, max_retries=0, circuit_breaker_enabled=False).v2
                with self.assertRaises(AuthTransportError) as cm:
                    v2.check("u", "p", consistency=at_least(99))
                self.assertIs(type(cm.exception), cls)
                self.assertEqual(cm.exception.status, status)
        self.assertEqual(ChangesExpiredError("m", 410, json.loads(err(410, "changes_expired", oldest=40))).oldest, 40)

    def test_consistency_unavailable_is_retried(self):
        server = self.fake(fail_first(1, reply(503, err(503, "consistency_unavailable"), {"Retry-After": "0"}),
                                      reply(200, ok({"user": "u", "permission": "p", "allowed": True}))))
        self.assertTrue(self.client(server.url, max_retries=1).v2.check("u", "p", consistency=FULL))
        self.assertEqual(server.hits, 2)


class TimeBoundTest(Case):
    def test_puts_send_the_expiry(self):
        at = datetime(2031, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        answer = {"created": True, "expires_at": "2031-01-02T03:04:05Z", "revision": 3, "role": "r", "user": "u"}
        cases = [
            ("put_member", ("r", "u"), {"ttl": "4h"}, "/api/v2/roles/r/members/u", '{"ttl":"4h"}', True),
            ("put_member", ("r", "u"), {"ttl": timedelta(minutes=90)}, "/api/v2/roles/r/members/u", '{"ttl":"5400s"}', True),
            ("put_member", ("r", "u"), {"ttl": 2.5}, "/api/v2/roles/r/members/u", '{"ttl":"2500ms"}', True),
            ("put_member", ("r", "u"), {"expires_at": at}, "/api/v2/roles/r/members/u",
             '{"expires_at":"2031-01-02T03:04:05Z"}', True),
            ("put_member", ("r", "u"), {"expires_at": datetime(2031, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1)))},
             "/api/v2/roles/r/members/u", '{"expires_at":"2031-01-02T03:04:05Z"}', True),
            ("put_member", ("r", "u"), {"expires_at": datetime(2031, 1, 2, 3, 4, 5)}, "/api/v2/roles/r/members/u",
             '{"expires_at":"2031-01-02T03:04:05Z"}', True),
            ("put_member", ("r", "u"), {}, "/api/v2/roles/r/members/u", "", True),
            ("put_permission", ("r", "p"), {"ttl": "30m"}, "/api/v2/roles/r/permissions/p", '{"ttl":"30m"}', True),
            ("put_permission", ("r", "p"), {"expires_at": "2031-01-02T03:04:05Z"}, "/api/v2/roles/r/permissions/p",
             '{"expires_at":"2031-01-02T03:04:05Z"}', True),
            ("put_member_detailed", ("r", "u"), {"ttl": "4h"}, "/api/v2/roles/r/members/u", '{"ttl":"4h"}', answer),
            ("put_permission_detailed", ("r", "p"), {}, "/api/v2/roles/r/permissions/p", "", answer),
        ]
        for name, args, kwargs, path, body, want in cases:
            with self.subTest(method=name, kwargs=kwargs):
                seen = []

                def handler(n, req, seen=seen):
                    seen.append((req.command, req.path, body_of(req)))
                    return reply(201, ok(answer))

                c = self.client(self.fake(handler).url)
                self.assertEqual(getattr(c.v2, name)(*args, **kwargs), want)
                self.assertEqual(seen, [("PUT", path, body)])

    def test_bad_expiries_are_refused_before_any_request(self):
        server = self.fake(lambda n, req: reply(200, ok({})))
        v2 = self.client(server.url).v2
        for kwargs in ({"ttl": 0}, {"ttl": -5}, {"ttl": timedelta(0)}, {"ttl": "1h", "expires_at": "2031-01-01T00:00:00Z"},
                       {"expires_at": 5}, {"ttl": True}):
            with self.subTest(kwargs=kwargs):
                with self.assertRaises((ValueError, TypeError)):
                    v2.put_member("r", "u", **kwargs)
        self.assertEqual(server.hits, 0)

    def test_detailed_listings(self):
        def handler(n, req):
            if "/members" in req.path:
                return reply(200, ok({"items": [{"expires_at": "2031-01-02T03:04:05Z", "user": "alice"},
                                                {"expires_at": None, "user": "bob"}], "next_cursor": None, "revision": 3}))
            return reply(200, ok({"items": [{"expires_at": None, "name": "read"}], "next_cursor": None, "revision": 3}))

        v2 = self.client(self.fake(handler).url).v2
        self.assertEqual(list(v2.members_detailed("r")),
                         [{"user": "alice", "expires_at": "2031-01-02T03:04:05Z"}, {"user": "bob", "expires_at": None}])
        self.assertEqual(list(v2.members("r")), ["alice", "bob"])
        self.assertEqual(list(v2.permissions_detailed("r")), [{"name": "read", "expires_at": None}])


def item(revision, role):
    return {"at": "2030-05-06T07:08:09Z", "op": "create_role", "revision": revision, "role": role}


class ChangesTest(Case):
    def test_one_page(self):
        page = {"items": [item(3, "a")], "next_cursor": "c3", "revision": 3}
        server = self.fake(lambda n, req: reply(200, ok(page)))
        v2 = self.client(server.url).v2
        self.assertEqual(v2.changes(since=2, limit=5, wait=5), page)
        self.assertEqual(v2.changes(since=2, cursor="c3", wait=timedelta(seconds=1.5)), page)
        self.assertEqual(
            [p for _, p, _ in server.requests],
            ["/api/v2/changes?since=2&limit=5&wait=5s", "/api/v2/changes?cursor=c3&wait=1500ms"],
        )
        for bad in (-1, 61, "5s"):
            with self.subTest(wait=bad):
                with self.assertRaises((ValueError, TypeError)):
                    v2.changes(wait=bad)
        server.handler = lambda n, req: reply(200, ok({"items": [], "next_cursor": None}))
        with self.assertRaises(AuthTransportError):
            v2.changes()

    def test_follow_follows_cursors_then_long_polls(self):
        stop = threading.Event()
        pages = {
            1: {"items": [item(3, "a"), item(4, "b")], "next_cursor": "c4", "revision": 4},
            2: {"items": [item(6, "c")], "next_cursor": None, "revision": 8},
            3: {"items": [], "next_cursor": None, "revision": 8},
            4: {"items": [item(9, "d")], "next_cursor": None, "revision": 9},
        }

        def handler(n, req):
            if n == 4:
                stop.set()  # the caller wants to stop after this answer
            return reply(200, ok(pages[n]))

        server = self.fake(handler)
        v2 = self.client(server.url).v2
        roles = [c["role"] for c in v2.follow_changes(since=2, wait=20, page_size=2, stop=stop)]
        self.assertEqual(roles, ["a", "b", "c", "d"])
        self.assertEqual(
            [p for _, p, _ in server.requests],
            [
                "/api/v2/changes?since=2&limit=2&wait=20s",
                "/api/v2/changes?cursor=c4&limit=2",
                "/api/v2/changes?since=8&limit=2&wait=20s",
                "/api/v2/changes?since=8&limit=2&wait=20s",
            ],
        )

    def test_follow_raises_changes_expired(self):
        server = self.fake(lambda n, req: reply(410, err(410, "changes_expired", oldest=40)))
        with self.assertRaises(ChangesExpiredError) as cm:
            next(self.client(server.url).v2.follow_changes(since=3))
        self.assertEqual(cm.exception.oldest, 40)
        self.assertEqual([p for _, p, _ in server.requests], ["/api/v2/changes?since=3&wait=30s"])

    def test_a_long_poll_outlasts_the_client_timeout(self):
        release = threading.Event()

        def handler(n, req):
            release.wait(10)  # held like a long poll, until the test lets go
            return reply(200, ok({"items": [item(5, "a")], "next_cursor": None, "revision": 5}))

        server = self.fake(handler)
        c = self.client(server.url, timeout=0.2, max_retries=0)
        timer = threading.Timer(0.5, release.set)
        timer.start()
        self.addCleanup(timer.cancel)
        self.assertEqual(c.v2.changes(wait=5)["revision"], 5)


if __name__ == "__main__":
    unittest.main()
