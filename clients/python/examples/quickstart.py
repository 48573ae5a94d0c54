#!/usr/bin/env python3
"""The quick start of the auth project, with the Python client.

Creates the role admin, grants it manage_users, makes john_doe a member and
asks whether john_doe may manage users.

    python3 examples/quickstart.py [SERVICE_URL [API_KEY]]

SERVICE_URL defaults to $AUTH_URL, then http://localhost:4000; API_KEY to
$AUTH_KEY, then a new random client key (a new, empty tenant). Exit status:
0 when the answer is yes, 2 when it is no, 1 when there is no answer.
"""

import os
import sys
import uuid

try:
    from auth import AuthTransportError, Client
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from auth import AuthTransportError, Client


def main(argv):
    service_url = argv[1] if len(argv) > 1 else os.environ.get("AUTH_URL", "http://localhost:4000")
    api_key = argv[2] if len(argv) > 2 else os.environ.get("AUTH_KEY") or str(uuid.uuid4())

    with Client(api_key, service_url) as client:
        try:
            print("create_role:", client.create_role("admin"))
            print("add_permission:", client.add_permission("admin", "manage_users"))
            print("add_membership:", client.add_membership("john_doe", "admin"))
            answer = client.user_has_permission("john_doe", "manage_users")
        except AuthTransportError as exc:
            # No decision: an outage or a refused request is never a "no".
            print("no answer from the auth service (status %s): %s" % (exc.status, exc), file=sys.stderr)
            return 1
    allowed = answer["data"]["has_permission"]
    print("john_doe may manage_users:", allowed)
    return 0 if allowed else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
