#!/usr/bin/env python3
"""API v2 with the Python client.

Sets up two roles (editor inherits from staff) with five members, explains a
decision, checks a batch of questions in one request and lists the members
of editor two per page.

    python3 examples/v2.py [SERVICE_URL [API_KEY]]

SERVICE_URL defaults to $AUTH_URL, then http://localhost:4000; API_KEY to
$AUTH_KEY, then 3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d. Every change is
idempotent, so it can run again on the same tenant. Exit status 1 when the
service gives no answer.
"""

import os
import sys

# Run from a checkout, the checkout's package comes first (an older
# installed one may lack API v2).
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isfile(os.path.join(_CHECKOUT, "auth", "client.py")):
    sys.path.insert(0, _CHECKOUT)

from auth import AuthTransportError, Client  # noqa: E402


def yes(value):
    return "true" if value else "false"


def run(v2):
    # PUT is idempotent: each call creates, or finds it done already.
    v2.put_role("staff")
    v2.put_role("editor")
    v2.put_permission("staff", "read")
    v2.put_permission("editor", "write")
    v2.put_parent("editor", "staff")
    for user in ("alice", "bob", "carol", "dave", "erin"):
        v2.put_member("editor", user)

    answer = v2.explain("alice", "read")
    path = " → ".join("%s %s" % (step["type"], step["name"]) for step in answer["explanation"]["path"] or [])
    print("alice may read: %s, through %s" % (yes(answer["allowed"]), path))

    results = v2.check_batch([("alice", "read"), ("alice", "write"), ("alice", "delete"), ("zoe", "read")])
    print("batch check:")
    for r in results:
        print("  %s %s: %s" % (r["user"], r["permission"], yes(r["allowed"])))

    print("members of editor, two per page:")
    for user in v2.members("editor", page_size=2):  # fetches page 2 only when needed
        print("  " + user)


def main(argv):
    service_url = argv[1] if len(argv) > 1 else os.environ.get("AUTH_URL", "http://localhost:4000")
    api_key = argv[2] if len(argv) > 2 else os.environ.get("AUTH_KEY") or "3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
    with Client(api_key, service_url) as client:
        try:
            run(client.v2)
        except AuthTransportError as exc:
            # No decision: an outage or a refused request is never a "no".
            print("no answer (status %s, reason %s): %s" % (exc.status, exc.reason, exc), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
