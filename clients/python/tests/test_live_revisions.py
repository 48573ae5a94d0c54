"""Tests of revisions, consistency, time-bound rules and the change feed
against a running auth-server at $AUTH_TEST_URL (run by TestPythonClient in
client/python_test.go)."""

import threading
import time
import unittest
import uuid
from datetime import timedelta

from support import live_url_or_skip

from auth import FULL, AuthTransportError, EnhancedAuthClient, RevisionAheadError, at_least


class LiveRevisionsTest(unittest.TestCase):
    def setUp(self):
        self.url = live_url_or_skip(self)
        c = EnhancedAuthClient(str(uuid.uuid4()), self.url, timeout=10, session_consistency=True)
        self.addCleanup(c.close)
        self.client = c
        self.v2 = c.v2

    def test_revisions_consistency_expiry_and_feed(self):
        c, v2 = self.client, self.v2
        self.assertEqual(c.last_revision, 0)
        last = 0
        for call in (lambda: v2.put_role("editor"), lambda: v2.put_permission("editor", "read"),
                     lambda: v2.put_member("editor", "alice")):
            call()
            self.assertGreater(c.last_revision, last)
            last = c.last_revision

        allowed, revision = v2.check_revision("alice", "read")
        self.assertTrue(allowed)
        self.assertGreaterEqual(revision, last)
        self.assertGreaterEqual(v2.get_role("editor")["revision"], last)
        results, revision = v2.check_batch_revision([("alice", "read")])
        self.assertEqual((results[0]["allowed"], revision >= last), (True, True))
        self.assertTrue(v2.check("alice", "read", consistency=FULL))
        with self.assertRaises(RevisionAheadError):
            v2.check("alice", "read", consistency=at_least(last + 1000))

        put = v2.put_member_detailed("editor", "bob", ttl="1h")
        self.assertTrue(put["created"])
        self.assertIsNotNone(put["expires_at"])
        self.assertGreater(put["revision"], last)
        self.assertFalse(v2.put_member("editor", "bob", ttl=timedelta(hours=2)))
        members = list(v2.members_detailed("editor"))
        self.assertEqual([m["user"] for m in members], ["alice", "bob"])
        self.assertIsNone(members[0]["expires_at"])
        self.assertIsNotNone(members[1]["expires_at"])
        self.assertIsNone(v2.put_member_detailed("editor", "bob")["expires_at"])
        self.assertTrue(v2.put_permission("editor", "write", ttl=3600))
        self.assertEqual([g["name"] for g in v2.permissions_detailed("editor")], ["read", "write"])
        with self.assertRaises(AuthTransportError) as cm:
            v2.put_member("editor", "carol", expires_at="2000-01-01T00:00:00Z")
        self.assertEqual(cm.exception.reason, "invalid_body")

        exported = v2.export_policy()
        self.assertEqual(exported["revision"], exported["version"])
        self.assertGreaterEqual(exported["revision"], c.last_revision)

        ops = []
        page = v2.changes(limit=2)
        while True:
            ops += [(i["op"], i.get("role"), i.get("permission") or i.get("user")) for i in page["items"]]
            if not page["next_cursor"]:
                break
            page = v2.changes(cursor=page["next_cursor"], limit=2)
        self.assertEqual(ops, [
            ("create_role", "editor", None), ("grant", "editor", "read"), ("add_member", "editor", "alice"),
            ("add_member", "editor", "bob"), ("add_member", "editor", "bob"), ("add_member", "editor", "bob"),
            ("grant", "editor", "write"),
        ])

        # Following from the export: a change committed during the long poll
        # arrives.
        stop = threading.Event()
        followed = []
        got = threading.Event()

        def follow():
            for change in v2.follow_changes(since=exported["revision"], wait=5, stop=stop):
                followed.append(change)
                got.set()
                return

        t = threading.Thread(target=follow, daemon=True)
        t.start()
        v2.put_member("editor", "carol")
        self.assertTrue(got.wait(30), "no change followed")
        stop.set()
        t.join(30)
        self.assertEqual((followed[0]["op"], followed[0]["user"]), ("add_member", "carol"))

        # A membership with a short ttl ends at its expiry: poll until the
        # check says no.
        v2.put_member("editor", "dave", ttl="1s")
        deadline = time.monotonic() + 30
        while v2.check("dave", "read"):
            self.assertLess(time.monotonic(), deadline, "dave still holds read")
            time.sleep(0.05)


if __name__ == "__main__":
    unittest.main()
