"""Tests of the workflow methods of the API v2 client against scripted HTTP
servers: requests and answers, pagination of runs, reasons, the retry
policy."""

import json
import unittest
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from support import DROP, fail_first, reply
from test_v2 import V2TestCase, body_of, err, ok

from auth import AuthTransportError

PAYROLL = {
    "catch_up": True,
    "created_at": "2026-12-06T02:00:00.000000Z",
    "description": None,
    "enabled": True,
    "name": "payroll",
    "next_run_at": "2026-12-06T02:05:00Z",
    "notify": "changes",
    "permission": "run_payroll",
    "schedule": "5m",
    "updated_at": "2026-12-06T02:00:00.000000Z",
    "webhook_url": "https://hooks.example.com/auth",
}

RUN = {
    "added": ["carol"],
    "attempt": 1,
    "count": 3,
    "duration_ms": 4,
    "error": None,
    "finished_at": "2026-12-06T02:05:00.004Z",
    "id": "42",
    "outcome": "ok",
    "removed": [],
    "scheduled_at": "2026-12-06T02:05:00Z",
    "started_at": "2026-12-06T02:05:00Z",
    "trigger": "manual",
    "users": ["alice", "bob", "carol"],
    "webhook": {"attempts": 1, "error": None, "outcome": "delivered", "status": 200},
}


def run(run_id, **changes):
    return dict(RUN, id=run_id, **changes)


class WorkflowRoutesTest(V2TestCase):
    def test_every_method_sends_its_request_and_reads_its_answer(self):
        created = dict(PAYROLL, created=True, secret="whsec_abc")
        replaced = dict(PAYROLL, created=False)
        rotated = {"name": "payroll", "secret": "whsec_new", "previous_valid_until": "2026-12-07T02:00:00Z"}
        cases = [
            ("put_workflow", ("payroll", "5m"), {}, created,
             "PUT", "/api/v2/workflows/payroll", '{"schedule":"5m"}', created),
            ("put_workflow", ("payroll", "*/5 * * * *"),
             {"permission": "run_payroll", "webhook_url": "https://hooks.example.com/auth", "description": "Pay",
              "enabled": False, "notify": "always", "catch_up": False},
             replaced, "PUT", "/api/v2/workflows/payroll",
             '{"schedule":"*/5 * * * *","permission":"run_payroll","webhook_url":"https://hooks.example.com/auth",'
             '"description":"Pay","notify":"always","enabled":false,"catch_up":false}', replaced),
            ("put_workflow", ("a/b", "1h"), {"description": "", "enabled": True}, replaced,
             "PUT", "/api/v2/workflows/a%2Fb", '{"schedule":"1h","enabled":true}', replaced),
            ("get_workflow", ("payroll",), {}, PAYROLL, "GET", "/api/v2/workflows/payroll", "", PAYROLL),
            ("delete_workflow", ("payroll",), {}, {"deleted": True, "name": "payroll"},
             "DELETE", "/api/v2/workflows/payroll", "", True),
            ("delete_workflow", ("payroll",), {}, {"deleted": False, "name": "payroll"},
             "DELETE", "/api/v2/workflows/payroll", "", False),
            ("rotate_workflow_secret", ("payroll",), {}, rotated,
             "POST", "/api/v2/workflows/payroll/secret", "", rotated),
            ("rotate_workflow_secret", ("payroll", "36h"), {}, rotated,
             "POST", "/api/v2/workflows/payroll/secret", '{"grace":"36h"}', rotated),
            ("rotate_workflow_secret", ("payroll", 0), {}, dict(rotated, previous_valid_until=None),
             "POST", "/api/v2/workflows/payroll/secret", '{"grace":"0s"}', dict(rotated, previous_valid_until=None)),
            ("rotate_workflow_secret", ("payroll", timedelta(hours=2)), {}, rotated,
             "POST", "/api/v2/workflows/payroll/secret", '{"grace":"7200s"}', rotated),
            ("rotate_workflow_secret", ("payroll", 1.5), {}, rotated,
             "POST", "/api/v2/workflows/payroll/secret", '{"grace":"1500ms"}', rotated),
            ("run_workflow", ("payroll",), {}, RUN, "POST", "/api/v2/workflows/payroll/run", "", RUN),
            ("run_workflow", ("payroll",), {}, run("7", outcome="failed", error="no graph", webhook=None),
             "POST", "/api/v2/workflows/payroll/run", "", run("7", outcome="failed", error="no graph", webhook=None)),
        ]
        for name, args, kwargs, data, method, path, body, want in cases:
            with self.subTest(method=name, args=args, kwargs=kwargs):
                seen = []

                def handler(n, req, data=data, seen=seen):
                    seen.append((req.command, req.path, body_of(req), req.headers.get("Content-Type")))
                    return reply(200, ok(data))

                v2 = self.v2(self.fake(handler).url)
                self.assertEqual(getattr(v2, name)(*args, **kwargs), want)
                self.assertEqual(len(seen), 1)
                got_method, got_path, got_body, ctype = seen[0]
                self.assertEqual((got_method, got_path), (method, path))
                if body:
                    self.assertEqual(json.loads(got_body), json.loads(body))
                    self.assertEqual(ctype, "application/json")
                else:
                    self.assertEqual(got_body, "")

    def test_workflows_lists_them(self):
        other = dict(PAYROLL, name="nightly", webhook_url=None, next_run_at=None, enabled=False)
        server = self.fake(lambda n, req: reply(200, ok({"items": [other, PAYROLL], "next_cursor": None})))
        self.assertEqual(list(self.v2(server.url).workflows()), [other, PAYROLL])
        self.assertEqual([(m, p) for m, p, _ in server.requests], [("GET", "/api/v2/workflows")])

    def test_runs_are_read_page_by_page_newest_first(self):
        answers = {
            "": {"items": [run("45"), run("44")], "next_cursor": "c1"},
            "c1": {"items": [run("43", finished_at=None, outcome="running", webhook=None), run("42")], "next_cursor": "c2"},
            "c2": {"items": [run("41")], "next_cursor": None},
        }

        def handler(n, req):
            cursor = parse_qs(urlsplit(req.path).query).get("cursor", [""])[0]
            if cursor not in answers:
                return reply(400, err(400, "invalid_cursor", parameter="cursor"))
            return reply(200, ok(answers[cursor]))

        server = self.fake(handler)
        it = self.v2(server.url).workflow_runs("pay-roll", page_size=2)
        self.assertEqual(server.hits, 0, "no request before the iteration starts")
        self.assertEqual([next(it)["id"], next(it)["id"]], ["45", "44"])
        self.assertEqual(server.hits, 1)
        rest = list(it)
        self.assertEqual([r["id"] for r in rest], ["43", "42", "41"])
        self.assertIsNone(rest[0]["finished_at"])
        self.assertIsNone(rest[0]["webhook"])
        self.assertEqual(
            [p for _, p, _ in server.requests],
            [
                "/api/v2/workflows/pay-roll/runs?limit=2",
                "/api/v2/workflows/pay-roll/runs?limit=2&cursor=c1",
                "/api/v2/workflows/pay-roll/runs?limit=2&cursor=c2",
            ],
        )


class WorkflowErrorsTest(V2TestCase):
    def test_reasons_and_details(self):
        cases = [
            ("get_workflow", ("payroll",), 404, err(404, "workflow_not_found", workflow="payroll"), "workflow_not_found", "workflow"),
            ("run_workflow", ("payroll",), 404, err(404, "workflow_not_found", workflow="payroll"), "workflow_not_found", "workflow"),
            ("put_workflow", ("payroll", "1ms"), 400, err(400, "invalid_schedule", schedule="1ms"), "invalid_schedule", "schedule"),
            ("put_workflow", ("payroll", "5m", None, "http://10.0.0.1/"), 400,
             err(400, "webhook_refused", webhook_url="http://10.0.0.1/"), "webhook_refused", "webhook_url"),
            ("put_workflow", ("pay.roll", "5m"), 400, err(400, "invalid_name", kind="workflow"), "invalid_name", "kind"),
        ]
        for name, args, status, body, reason, detail in cases:
            with self.subTest(method=name, reason=reason):
                server = self.fake(lambda n, req, status=status, body=body: reply(status, body))
                v2 = self.v2(server.url, max_retries=0, circuit_breaker_enabled=False)
                with self.assertRaises(AuthTransportError) as cm:
                    getattr(v2, name)(*args)
                self.assertEqual((cm.exception.status, cm.exception.reason), (status, reason))
                self.assertIn(detail, cm.exception.details)

    def test_runs_of_a_missing_workflow_raise_from_the_iteration(self):
        server = self.fake(lambda n, req: reply(404, err(404, "workflow_not_found", workflow="payroll")))
        with self.assertRaises(AuthTransportError) as cm:
            list(self.v2(server.url).workflow_runs("payroll"))
        self.assertEqual(cm.exception.reason, "workflow_not_found")

    def test_empty_names_and_bad_graces_are_refused_before_any_request(self):
        server = self.fake(lambda n, req: reply(200, ok({})))
        v2 = self.v2(server.url)
        calls = [
            (ValueError, lambda: v2.put_workflow("", "5m")),
            (ValueError, lambda: v2.get_workflow("")),
            (ValueError, lambda: v2.delete_workflow("")),
            (ValueError, lambda: v2.rotate_workflow_secret("")),
            (ValueError, lambda: v2.run_workflow("")),
            (ValueError, lambda: v2.workflow_runs("")),
            (ValueError, lambda: v2.rotate_workflow_secret("w", -1)),
            (ValueError, lambda: v2.rotate_workflow_secret("w", "")),
            (TypeError, lambda: v2.rotate_workflow_secret("w", True)),
            (TypeError, lambda: v2.rotate_workflow_secret("w", [1])),
        ]
        for i, (exc, call) in enumerate(calls):
            with self.subTest(call=i):
                with self.assertRaises(exc):
                    call()
        self.assertEqual(server.hits, 0)

    def test_an_answer_without_the_expected_field_is_an_error(self):
        server = self.fake(lambda n, req: reply(200, ok({})))
        v2 = self.v2(server.url)
        calls = [
            lambda: v2.put_workflow("w", "5m"), lambda: v2.get_workflow("w"), lambda: v2.delete_workflow("w"),
            lambda: v2.rotate_workflow_secret("w"), lambda: v2.run_workflow("w"), lambda: list(v2.workflow_runs("w")),
        ]
        for i, call in enumerate(calls):
            with self.subTest(call=i):
                with self.assertRaises(AuthTransportError):
                    call()
        server.handler = lambda n, req: reply(200, ok({"created": True}))
        with self.assertRaises(AuthTransportError):
            v2.put_workflow("w", "5m")


class WorkflowRetryPolicyTest(V2TestCase):
    def test_put_get_delete_and_lists_are_retried(self):
        cases = [
            ("put_workflow", ("payroll", "5m"), dict(PAYROLL, created=False)),
            ("get_workflow", ("payroll",), PAYROLL),
            ("delete_workflow", ("payroll",), {"deleted": True, "name": "payroll"}),
            ("workflows", (), {"items": [], "next_cursor": None}),
            ("workflow_runs", ("payroll",), {"items": [], "next_cursor": None}),
        ]
        for name, args, data in cases:
            with self.subTest(method=name):
                answers = fail_first(2, reply(503, err(503, "unavailable")), reply(200, ok(data)))

                def handler(n, req, answers=answers):
                    body_of(req)  # read the body: the connection is reused
                    return answers(n, req)

                server = self.fake(handler)
                answer = getattr(self.v2(server.url, max_retries=2), name)(*args)
                if name in ("workflows", "workflow_runs"):
                    list(answer)
                self.assertEqual(server.hits, 3)

    def test_run_and_rotate_are_never_retried(self):
        for name, args in (("run_workflow", ("payroll",)), ("rotate_workflow_secret", ("payroll", "1h"))):
            for fail in (reply(503, err(503, "unavailable")), DROP):
                with self.subTest(method=name, fail=fail if fail == DROP else 503):
                    server = self.fake(fail_first(2, fail, reply(200, ok(RUN))))
                    with self.assertRaises(AuthTransportError):
                        getattr(self.v2(server.url, max_retries=2), name)(*args)
                    self.assertEqual(server.hits, 1)


if __name__ == "__main__":
    unittest.main()
