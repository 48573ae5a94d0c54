"""HTTP client of auth-server, the multi-tenant RBAC authorization service.

Every method returns the server's parsed JSON answer. Every failure raises
:class:`AuthTransportError`: a refused or dropped connection, a timeout,
exhausted retries, an open circuit breaker (:class:`CircuitOpenError`) and
any non-2xx answer. A failure therefore never reads as a denial::

    with EnhancedAuthClient(key, "http://localhost:4000") as auth:
        try:
            answer = auth.user_has_permission("john_doe", "manage_users")
            allowed = answer["data"]["has_permission"]
        except AuthTransportError:
            allowed = False  # no decision: fail closed

Only idempotent requests (GET, HEAD, PUT, DELETE) are retried, on connection
errors and on answers of 429, 502, 503 and 504, with exponential backoff and
full jitter, honouring ``Retry-After``. POST is never retried, but for the
batch check of API v2 (``client.v2.check_batch``), a read that POST carries
only for its body.

API v2 is ``client.v2`` (:class:`V2`): typed answers, lazy paginated lists
(generators) and errors with a machine-readable ``reason``.

Every write's answer carries the revision it committed (``X-Auth-Revision``);
the client keeps the highest one it wrote, :attr:`EnhancedAuthClient.last_revision`.
The API v2 reads that accept a consistency take ``consistency=`` (``"full"``,
``"minimize_latency"``, ``"at_least:<n>"`` or :func:`at_least`); with
``session_consistency=True`` they send ``at_least:<last_revision>`` once the
client has written something, so it always reads its own writes.
"""

import json
import random
import threading
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, urlencode, urlsplit

import urllib3
from urllib3.exceptions import HTTPError, MaxRetryError, ResponseError
from urllib3.util.retry import Retry

__all__ = [
    "AuthTransportError",
    "ConsistencyUnavailableError",
    "RevisionAheadError",
    "ChangesExpiredError",
    "at_least",
    "FULL",
    "MINIMIZE_LATENCY",
    "CircuitOpenError",
    "CircuitBreaker",
    "EnhancedAuthClient",
    "Client",
    "V2",
    "MAX_BATCH",
]

#: Methods that are safe to send twice; only these are ever retried (every
#: PUT and DELETE route of the service is idempotent).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})
#: The most pairs the service checks in one POST /api/v2/check.
MAX_BATCH = 1000
#: Answers after which an idempotent request is retried.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: The header carrying a write's revision, and the one a read was computed at.
REVISION_HEADER = "X-Auth-Revision"
#: Consistency: answer at or after the tenant's current revision (read from
#: the database).
FULL = "full"
#: Consistency: answer from the replica's current state (the default).
MINIMIZE_LATENCY = "minimize_latency"
#: The longest long poll of the change feed, in seconds.
MAX_WAIT = 60.0


def at_least(revision):
    """Consistency: answer from a state at or after ``revision`` (such as
    :attr:`EnhancedAuthClient.last_revision` or an answer's ``revision``)."""
    if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
        raise ValueError("a revision is a non-negative int, got %r" % (revision,))
    return "at_least:%d" % revision


class AuthTransportError(Exception):
    """The service gave no usable answer.

    ``status`` is the HTTP status of a non-2xx answer, or ``None`` when there
    was no answer at all (connection refused or dropped, timeout, open
    circuit breaker). ``body`` is the answer's parsed JSON, its text when it
    is not JSON, or ``None``. ``reason`` is the error envelope's
    ``details.reason`` (such as ``"role_not_found"``; every API v2 error has
    one), else ``None``; ``details`` is that ``details`` dict, else ``None``.
    Branch on ``reason``, never on the message.
    """

    def __init__(self, message, status=None, body=None):
        super().__init__(message)
        self.status = status
        self.body = body
        details = body.get("details") if isinstance(body, dict) else None
        self.details = details if isinstance(details, dict) else None
        reason = self.details.get("reason") if self.details else None
        self.reason = reason if isinstance(reason, str) else None


class CircuitOpenError(AuthTransportError):
    """The client's circuit breaker is open: the call was not sent."""


class ConsistencyUnavailableError(AuthTransportError):
    """503 ``consistency_unavailable``: the replica was behind the revision a
    read asked for and could not reach its database in time. Retrying is
    safe (reads are retried like any 503)."""


class RevisionAheadError(AuthTransportError):
    """400 ``revision_ahead``: a read asked for a revision newer than the
    tenant's latest (``details["revision"]``, ``details["latest"]``): one the
    service never returned for this tenant."""


class ChangesExpiredError(AuthTransportError):
    """410 ``changes_expired``: the change feed no longer holds the changes
    after the position asked for. ``oldest`` is the oldest revision it still
    has. Resynchronise from :meth:`V2.export_policy` and follow the feed from
    its ``revision``."""

    @property
    def oldest(self):
        """The oldest revision the feed still holds, or ``None``."""
        value = (self.details or {}).get("oldest")
        return value if isinstance(value, int) and not isinstance(value, bool) else None


#: (status, reason) of the errors that raise a subclass of AuthTransportError.
_ERRORS = {
    (503, "consistency_unavailable"): ConsistencyUnavailableError,
    (400, "revision_ahead"): RevisionAheadError,
    (410, "changes_expired"): ChangesExpiredError,
}


class CircuitBreaker:
    """A thread-safe circuit breaker, one per client instance.

    Closed, it counts consecutive failed calls (a transport failure or an
    answer of 5xx or 429; 4xx answers are not failures). After
    ``failure_threshold`` of them it opens and refuses calls for
    ``recovery_timeout`` seconds. Then it is half-open: it lets one call
    through at a time; a success closes it, a failure opens it again.
    """

    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

    def __init__(self, failure_threshold=5, recovery_timeout=60.0, clock=time.monotonic):
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.recovery_timeout = float(recovery_timeout)
        self._clock = clock
        self._lock = threading.Lock()
        self._state = self.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self):
        """The current state: "closed", "open" or "half_open"."""
        with self._lock:
            self._advance()
            return self._state

    def _advance(self):
        if self._state == self.OPEN and self._clock() - self._opened_at >= self.recovery_timeout:
            self._state = self.HALF_OPEN
            self._probing = False

    def acquire(self):
        """Admit a call, or raise :class:`CircuitOpenError`."""
        with self._lock:
            self._advance()
            if self._state == self.CLOSED:
                return
            if self._state == self.HALF_OPEN and not self._probing:
                self._probing = True
                return
        raise CircuitOpenError("circuit breaker is open: the auth service is failing")

    def release(self, ok):
        """Record an admitted call's outcome: True (the service answered),
        False (it failed) or None (neither, e.g. the caller was interrupted)."""
        with self._lock:
            probe = self._state == self.HALF_OPEN and self._probing
            if probe:
                self._probing = False
            if ok is None:
                return
            if ok:
                self._failures = 0
                if probe:
                    self._state = self.CLOSED
                return
            if self._state == self.HALF_OPEN or self._state == self.OPEN:
                self._open()
                return
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._open()

    def _open(self):
        self._state = self.OPEN
        self._opened_at = self._clock()
        self._failures = 0
        self._probing = False


class _Retry(Retry):
    """urllib3's Retry with full-jitter backoff and a bound on Retry-After.

    The wait before retry n (n = 1, 2, …) is uniform in
    [0, min(backoff_cap, backoff_factor * 2 ** (n - 1))]; an answer with a
    Retry-After is retried after that many seconds, unless it asks for more
    than ``max_retry_after``, in which case the answer is returned at once.
    """

    def __init__(self, *args, max_retry_after=30.0, backoff_cap=10.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_retry_after = max_retry_after
        self.backoff_cap = backoff_cap

    def new(self, **kwargs):
        retry = super().new(**kwargs)
        retry.max_retry_after = self.max_retry_after
        retry.backoff_cap = self.backoff_cap
        return retry

    def get_backoff_time(self):
        n = len(self.history)
        if n == 0 or self.backoff_factor <= 0:
            return 0
        ceiling = min(self.backoff_cap, self.backoff_factor * (2 ** (n - 1)))
        return random.uniform(0, ceiling)

    def get_retry_after(self, response):
        try:
            return super().get_retry_after(response)
        except Exception:  # a malformed Retry-After is ignored
            return None

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        if response is not None and self.respect_retry_after_header:
            wait = self.get_retry_after(response)
            if wait is not None and wait > self.max_retry_after:
                # Give up; with raise_on_status=False the answer is returned.
                raise MaxRetryError(_pool, url, ResponseError("Retry-After of %ss is too long" % wait))
        return super().increment(
            method=method, url=url, response=response, error=error, _pool=_pool, _stacktrace=_stacktrace
        )


def _segment(value):
    """A path value escaped as exactly one path segment."""
    value = str(value)
    if value == "":
        raise ValueError("empty name")
    if value in (".", ".."):
        return value.replace(".", "%2E")
    return quote(value, safe="")


class EnhancedAuthClient:
    """Client of one auth-server for one tenant (``api_key``).

    :param api_key: the tenant's client key (a UUID4) or a bearer token, sent
        as ``Authorization: Bearer <api_key>``.
    :param service_url: where the service is, e.g. ``http://localhost:4000``;
        a path prefix (``https://gw.example.com/authz``) is kept.
    :param max_retries: retries of an idempotent request (0: none).
    :param pool_connections: how many per-host connection pools to keep.
    :param pool_maxsize: how many connections each pool keeps for reuse.
    :param timeout: seconds to connect, and seconds to wait for data.
    :param circuit_breaker_enabled: use a circuit breaker (one per instance).
    :param backoff_factor: base of the exponential backoff, in seconds.
    :param backoff_max: cap of one backoff wait, in seconds.
    :param max_retry_after: the longest Retry-After honoured; an answer asking
        for a longer wait is raised at once.
    :param circuit_breaker_threshold: consecutive failed calls that open the
        breaker.
    :param circuit_breaker_timeout: seconds the breaker stays open before it
        lets a probe through.
    :param session_consistency: every API v2 read that accepts a consistency
        asks for ``at_least:<last_revision>`` once the client has written
        something (a ``consistency=`` given to the call wins).
    """

    def __init__(
        self,
        api_key,
        service_url,
        max_retries=3,
        pool_connections=10,
        pool_maxsize=20,
        timeout=30,
        circuit_breaker_enabled=True,
        *,
        backoff_factor=0.3,
        backoff_max=10.0,
        max_retry_after=30.0,
        circuit_breaker_threshold=5,
        circuit_breaker_timeout=60.0,
        session_consistency=False,
    ):
        parts = urlsplit(service_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("service_url must be http(s)://host[:port][/prefix], got %r" % (service_url,))
        if parts.query or parts.fragment:
            raise ValueError("service_url must have no query or fragment, got %r" % (service_url,))
        self.api_key = api_key
        # The prefix is kept: paths are appended, never resolved (urljoin
        # would drop it).
        self.service_url = service_url.rstrip("/")
        self.max_retries = max_retries
        self.timeout = timeout
        self.pool_connections = pool_connections
        self.pool_maxsize = pool_maxsize
        def retry(methods):
            return _Retry(
                total=max_retries,
                redirect=False,
                allowed_methods=methods,
                status_forcelist=RETRY_STATUSES,
                backoff_factor=backoff_factor,
                respect_retry_after_header=True,
                raise_on_status=False,
                max_retry_after=max_retry_after,
                backoff_cap=backoff_max,
            )

        self._retry = retry(IDEMPOTENT_METHODS)
        # For a POST that only reads (the v2 batch check).
        self._retry_post = retry(frozenset({"POST"}))
        # Non-idempotent requests are sent once: no retry even on a
        # connection error.
        self._no_retry = Retry(total=0, redirect=False, raise_on_status=False)
        self._http = urllib3.PoolManager(
            num_pools=pool_connections,
            maxsize=pool_maxsize,
            block=False,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            retries=self._retry,
            headers={
                "Authorization": "Bearer %s" % api_key,
                "Accept": "application/json",
                "User-Agent": "auth-python-client",
            },
        )
        self.circuit_breaker = (
            CircuitBreaker(circuit_breaker_threshold, circuit_breaker_timeout) if circuit_breaker_enabled else None
        )
        self._v2 = None
        self.session_consistency = bool(session_consistency)
        self._revision_lock = threading.Lock()
        self._last_revision = 0

    @property
    def last_revision(self):
        """The highest revision of the tenant's policy a write of this client
        (API v1 or v2) committed, from the answers' ``X-Auth-Revision``; 0
        before the first such write. Thread-safe."""
        with self._revision_lock:
            return self._last_revision

    def _observe_revision(self, revision):
        with self._revision_lock:
            if revision > self._last_revision:
                self._last_revision = revision

    @property
    def v2(self):
        """The API v2 client (:class:`V2`), sharing this client's
        connections, retries and circuit breaker."""
        if self._v2 is None:
            self._v2 = V2(self)
        return self._v2

    def __repr__(self):
        return "%s(service_url=%r)" % (type(self).__name__, self.service_url)

    # -- transport ---------------------------------------------------------

    def _request(self, method, path, body=None, read_only=False, meta=None, wait=None):
        """Send one call. ``body`` is sent as JSON; ``read_only`` marks a POST
        that only reads, and so is retried like a GET. ``meta``, a dict,
        receives the answer's ``"revision"`` (its ``X-Auth-Revision``, or
        ``None``); ``wait`` (seconds) extends the read timeout for a long
        poll."""
        if method in IDEMPOTENT_METHODS:
            retries = self._retry
        elif read_only:
            retries = self._retry_post
        else:
            retries = self._no_retry
        extra = {}
        if body is not None:
            extra["body"] = json.dumps(body, separators=(",", ":")).encode("utf-8")
            extra["headers"] = dict(self._http.headers, **{"Content-Type": "application/json"})
        if wait:
            extra["timeout"] = urllib3.Timeout(connect=self.timeout, read=self.timeout + wait)
        breaker = self.circuit_breaker
        if breaker is not None:
            breaker.acquire()
        outcome = None
        try:
            try:
                response = self._http.request(
                    method,
                    self.service_url + path,
                    retries=retries,
                    redirect=False,
                    preload_content=True,
                    **extra
                )
            except (HTTPError, OSError) as exc:
                outcome = False
                raise AuthTransportError("%s %s: request failed: %s" % (method, path, exc)) from exc
            status = response.status
            outcome = not (status >= 500 or status == 429)
        finally:
            if breaker is not None:
                breaker.release(outcome)
        body = _decode(response.data)
        if not 200 <= status <= 299:
            message = body.get("message") if isinstance(body, dict) else None
            error = AuthTransportError(
                "%s %s: %d %s" % (method, path, status, message or response.reason or "error"), status, body
            )
            cls = _ERRORS.get((status, error.reason))
            if cls is not None:
                error = cls(str(error), status, body)
            raise error
        revision = _revision(response.headers.get(REVISION_HEADER))
        if revision is not None and method not in ("GET", "HEAD") and not read_only:
            self._observe_revision(revision)
        if meta is not None:
            meta["revision"] = revision
        if not isinstance(body, (dict, list)):
            raise AuthTransportError("%s %s: answer is not JSON" % (method, path), status, body)
        return body

    def _get(self, *parts, query=None):
        return self._request("GET", _path(parts, query))

    def _post(self, *parts):
        return self._request("POST", _path(parts))

    def _delete(self, *parts):
        return self._request("DELETE", _path(parts))

    # -- the routes --------------------------------------------------------

    def ping(self):
        """GET /ping: ``{"message": "PONG"}``."""
        return self._request("GET", "/ping")

    def create_role(self, role):
        """POST /api/role/{role}: ``{"result": true}``, also when it exists."""
        return self._post("role", (role,))

    def delete_role(self, role):
        """DELETE /api/role/{role}: envelope with ``data={"result": bool}``."""
        return self._delete("role", (role,))

    def list_roles(self):
        """GET /api/roles: ``{"result": [{"description": …, "role": …}]}``."""
        return self._get("roles")

    def add_permission(self, group, name):
        """POST /api/permission/{group}/{name}: ``{"result": bool}``."""
        return self._post("permission", (group,), (name,))

    def remove_permission(self, group, name):
        """DELETE /api/permission/{group}/{name}: ``{"result": true}``."""
        return self._delete("permission", (group,), (name,))

    def has_permission(self, group, name):
        """GET /api/permission/{group}/{name}: does the role hold it,
        ``{"result": bool}``."""
        return self._get("permission", (group,), (name,))

    def add_membership(self, user, group):
        """POST /api/membership/{user}/{group}: ``{"result": bool}``."""
        return self._post("membership", (user,), (group,))

    def remove_membership(self, user, group):
        """DELETE /api/membership/{user}/{group}: ``{"result": true}``."""
        return self._delete("membership", (user,), (group,))

    def has_membership(self, user, group):
        """GET /api/membership/{user}/{group}: envelope with
        ``data={"has_permission": bool}``."""
        return self._get("membership", (user,), (group,))

    def user_has_permission(self, user, name):
        """GET /api/has_permission/{user}/{name}: envelope with
        ``data={"has_permission": bool}``."""
        return self._get("has_permission", (user,), (name,))

    def get_user_permissions(self, user):
        """GET /api/user_permissions/{user}: envelope with
        ``data={"count": N, "permissions": [{"name": …}]}``."""
        return self._get("user_permissions", (user,))

    def get_role_permissions(self, role):
        """GET /api/role_permissions/{role}: envelope with
        ``data=[{"name": …}]``."""
        return self._get("role_permissions", (role,))

    def get_user_roles(self, user):
        """GET /api/user_roles/{user}: ``{"result": [{"role": …, "user": …}]}``."""
        return self._get("user_roles", (user,))

    def get_role_members(self, role):
        """GET /api/members/{role}: ``{"result": [{"role": …, "user": …}]}``."""
        return self._get("members", (role,))

    def which_roles_can(self, name):
        """GET /api/which_roles_can/{name}: ``{"result": [{"role": …}]}``."""
        return self._get("which_roles_can", (name,))

    def which_users_can(self, name):
        """GET /api/which_users_can/{name}:
        ``{"result": [{"role": …, "user": …}]}``."""
        return self._get("which_users_can", (name,))

    def get_users_for_workflow(self, workflow_name):
        """GET /api/workflow/users/{workflow_name}: envelope with
        ``data={"count": N, "members": [{"role": …, "user": …}]}``."""
        return self._get("workflow", "users", (workflow_name,))

    def check_user_workflow_permission(self, user, workflow_name):
        """GET /api/workflow/user/{user}/can_run/{workflow_name}: envelope
        with ``data={"has_permission": bool}``."""
        return self._get("workflow", "user", (user,), "can_run", (workflow_name,))

    def get_role_parents(self, role):
        """GET /api/role/{role}/parents:
        ``{"result": [{"parent": …, "role": …}]}``."""
        return self._get("role", (role,), "parents")

    def add_role_parent(self, role, parent):
        """POST /api/role/{role}/parents/{parent}: ``{"result": bool}``."""
        return self._post("role", (role,), "parents", (parent,))

    def remove_role_parent(self, role, parent):
        """DELETE /api/role/{role}/parents/{parent}: ``{"result": bool}``."""
        return self._delete("role", (role,), "parents", (parent,))

    def get_audit(self, limit=None, cursor=None, action=None, since=None, until=None, user=None):
        """GET /api/audit: one page of the tenant's audit trail, newest first.

        ``since`` and ``until`` are RFC 3339 strings or datetimes (naive ones
        are taken as UTC)."""
        query = {}
        for key, value in (("limit", limit), ("cursor", cursor), ("action", action), ("user", user)):
            if value is not None:
                query[key] = str(value)
        for key, value in (("since", since), ("until", until)):
            if isinstance(value, datetime):
                if value.tzinfo is None:
                    value = value.replace(tzinfo=timezone.utc)
                value = value.isoformat()
            if value is not None:
                query[key] = value
        return self._get("audit", query=query)

    # -- lifetime ----------------------------------------------------------

    def close(self):
        """Close the pooled connections. The client stays usable."""
        self._http.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


_KEEP = object()  # put_role: leave the description as it is


class V2:
    """API v2 (``/api/v2``) of one client: ``client.v2``.

    Answers are typed: checks return ``bool``, ``put_*`` return whether
    something was created, ``delete_*`` whether something was removed, and
    lists are generators that fetch one page at a time, the next only when
    the iteration goes past the last item of the current one (``page_size``:
    1–1000 items per request; ``None`` lets the service choose, 100).
    Failures raise :class:`AuthTransportError` with ``reason``; an empty
    name raises ``ValueError`` at once, before any request.

    The reads that accept a consistency take ``consistency=`` (``None``: the
    view's, see :meth:`with_consistency`, else session consistency when the
    client has it, else nothing: the service's default).
    """

    def __init__(self, client, consistency=None):
        self._client = client
        self._consistency = consistency

    def with_consistency(self, consistency):
        """A view of this API v2 client whose reads ask for ``consistency``
        unless a call gives its own (``None``: back to the default)."""
        return V2(self._client, _consistency_value(consistency))

    # -- plumbing ----------------------------------------------------------

    def _read_consistency(self, consistency):
        """The consistency a read sends, or None."""
        if consistency is not None:
            return _consistency_value(consistency)
        if self._consistency is not None:
            return self._consistency
        if self._client.session_consistency:
            revision = self._client.last_revision
            if revision > 0:
                return at_least(revision)
        return None

    def _with_consistency(self, path, consistency):
        value = self._read_consistency(consistency)
        if value is None:
            return path
        return path + ("&" if "?" in path else "?") + urlencode({"consistency": value})

    def _call(self, method, path, field, body=None, read_only=False, meta=None, wait=None):
        answer = self._client._request(method, path, body=body, read_only=read_only, meta=meta, wait=wait)
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict) or (field is not None and field not in data):
            raise AuthTransportError(
                "%s %s: unexpected answer: no %r field" % (method, path, "data" if not isinstance(data, dict) else field),
                200,
                answer,
            )
        return data

    def _flag(self, method, field, *parts):
        value = self._call(method, _path(("v2",) + parts), field)[field]
        if not isinstance(value, bool):
            raise AuthTransportError("%s: unexpected answer: %r is not a bool" % (method, field))
        return value

    def _list(self, parts, page_size, pick=None, consistency=None, consistent=False):
        path = _path(("v2",) + parts)  # raises ValueError now, not on iteration

        def pages():
            cursor = None
            while True:
                query = {}
                if page_size is not None:
                    query["limit"] = str(page_size)
                if cursor is not None:
                    query["cursor"] = cursor
                if consistent:
                    value = self._read_consistency(consistency)
                    if value is not None:
                        query["consistency"] = value
                url = path + ("?" + urlencode(query) if query else "")
                data = self._call("GET", url, "items")
                items = data["items"]
                if not isinstance(items, list):
                    raise AuthTransportError("GET %s: unexpected answer: items is not a list" % url, 200, data)
                for item in items:
                    yield pick(item) if pick else item
                nxt = data.get("next_cursor")
                if not nxt:
                    return
                if nxt == cursor:
                    raise AuthTransportError("GET %s: next_cursor repeats the cursor" % url, 200, data)
                cursor = nxt

        return pages()

    # -- checks ------------------------------------------------------------

    def check(self, user, permission, consistency=None):
        """GET /api/v2/check: whether ``user`` holds ``permission``. A
        failure raises; it is never a ``False``."""
        return self._check(user, permission, False, consistency)["allowed"]

    def check_revision(self, user, permission, consistency=None):
        """GET /api/v2/check: ``(allowed, revision)``, the decision and the
        revision of the tenant's policy it was computed at (``None`` when
        the service does not say)."""
        data = self._check(user, permission, False, consistency)
        return data["allowed"], data.get("revision")

    def explain(self, user, permission, consistency=None):
        """GET /api/v2/check?explain=true: ``{"user", "permission",
        "allowed", "explanation": {"path": [{"type", "name"}, …], "rule":
        […]}, "revision"}``; ``path`` and ``rule`` are ``None`` when
        denied."""
        data = self._check(user, permission, True, consistency)
        if not isinstance(data.get("explanation"), dict):
            raise AuthTransportError("GET /api/v2/check: unexpected answer: no 'explanation' field", 200, data)
        return data

    def _check(self, user, permission, explain, consistency=None):
        _segment(user), _segment(permission)
        query = {"user": user, "permission": permission}
        if explain:
            query["explain"] = "true"
        meta = {}
        path = self._with_consistency("/api/v2/check?" + urlencode(query), consistency)
        data = self._call("GET", path, "allowed", meta=meta)
        if not isinstance(data["allowed"], bool):
            raise AuthTransportError("GET /api/v2/check: unexpected answer: allowed is not a bool", 200, data)
        if "revision" not in data and meta.get("revision") is not None:
            data["revision"] = meta["revision"]
        return data

    def check_batch(self, pairs, consistency=None):
        """POST /api/v2/check: a list of ``{"user", "permission", "allowed"}``
        in the order of ``pairs`` (``(user, permission)`` tuples or dicts).

        More than :data:`MAX_BATCH` pairs are sent as several requests, one
        after the other: each is decided on its own, and any failure fails
        the whole call. It only reads, so it is retried like a GET. No pairs:
        no request."""
        return self.check_batch_revision(pairs, consistency)[0]

    def check_batch_revision(self, pairs, consistency=None):
        """:meth:`check_batch` that also says the revision the results were
        computed at: ``(results, revision)``, the lowest revision of its
        requests (``None`` for no pairs, or when the service does not say)."""
        checks = []
        for pair in pairs:
            if isinstance(pair, dict):
                user, permission = pair.get("user"), pair.get("permission")
            else:
                user, permission = pair
            _segment(user), _segment(permission)
            checks.append({"user": user, "permission": permission})
        results = []
        revision = None
        for start in range(0, len(checks), MAX_BATCH):
            chunk = checks[start:start + MAX_BATCH]
            meta = {}
            path = self._with_consistency("/api/v2/check", consistency)
            data = self._call("POST", path, "results", body={"checks": chunk}, read_only=True, meta=meta)
            got = data["results"]
            rev = data.get("revision", meta.get("revision"))
            if isinstance(rev, int) and (revision is None or rev < revision):
                revision = rev
            if not isinstance(got, list) or len(got) != len(chunk):
                raise AuthTransportError("POST /api/v2/check: %d checks, unexpected results" % len(chunk), 200, got)
            for i, (want, res) in enumerate(zip(chunk, got)):
                if (
                    not isinstance(res, dict)
                    or res.get("user") != want["user"]
                    or res.get("permission") != want["permission"]
                    or not isinstance(res.get("allowed"), bool)
                ):
                    raise AuthTransportError(
                        "POST /api/v2/check: result %d does not answer %r" % (start + i, want), 200, got
                    )
            results.extend(got)
        return results, revision

    # -- roles -------------------------------------------------------------

    def roles(self, page_size=None, consistency=None):
        """GET /api/v2/roles: the roles as ``{"name", "description"}``,
        sorted by name."""
        return self._list(("roles",), page_size, consistency=consistency, consistent=True)

    def create_role(self, name, description=None):
        """POST /api/v2/roles: ``{"name", "description"}``. An existing role
        raises with ``reason`` ``"role_exists"``; never retried."""
        _segment(name)
        body = {"name": name}
        if description is not None:
            body["description"] = description
        return self._call("POST", "/api/v2/roles", "name", body=body)

    def put_role(self, name, description=_KEEP):
        """PUT /api/v2/roles/{name}: creates the role or keeps it; returns
        whether it was created. A ``description`` given replaces the old
        one (``None`` clears it); without one it is left as it is."""
        body = None if description is _KEEP else {"description": description}
        path = _path(("v2", "roles", (name,)))
        created = self._call("PUT", path, "created", body=body)["created"]
        if not isinstance(created, bool):
            raise AuthTransportError("PUT %s: unexpected answer: created is not a bool" % path)
        return created

    def get_role(self, name, consistency=None):
        """GET /api/v2/roles/{name}: ``{"name", "description", "permissions":
        N, "members": N, "parents": […], "revision": N}``; a missing role
        raises with ``reason`` ``"role_not_found"``."""
        return self._call("GET", self._with_consistency(_path(("v2", "roles", (name,))), consistency), "name")

    def delete_role(self, name):
        """DELETE /api/v2/roles/{name}: whether it existed."""
        return self._flag("DELETE", "deleted", "roles", (name,))

    def permissions(self, role, page_size=None, consistency=None):
        """GET /api/v2/roles/{role}/permissions: the names of its direct
        grants."""
        return self._list(("roles", (role,), "permissions"), page_size, lambda it: it["name"], consistency, True)

    def permissions_detailed(self, role, page_size=None, consistency=None):
        """GET /api/v2/roles/{role}/permissions: its direct grants as
        ``{"name", "expires_at"}`` (``expires_at``: an RFC 3339 string, or
        ``None`` when permanent). Expired grants are left out."""
        return self._list(("roles", (role,), "permissions"), page_size, _expiring("name"), consistency, True)

    def put_permission(self, role, permission, ttl=None, expires_at=None):
        """PUT /api/v2/roles/{role}/permissions/{permission}: whether the
        grant is new. ``ttl`` (a Go duration such as ``"4h"``, seconds, or a
        ``timedelta``) or ``expires_at`` (a ``datetime``, naive ones taken as
        UTC, or an RFC 3339 string) make it time-bound; without them it is
        permanent. An existing grant gets the new expiry."""
        return self.put_permission_detailed(role, permission, ttl, expires_at)["created"]

    def put_permission_detailed(self, role, permission, ttl=None, expires_at=None):
        """:meth:`put_permission` returning the answer: ``{"created",
        "expires_at", "revision", "role", "permission"}``."""
        return self._put_expiring(_expiry(ttl, expires_at), "roles", (role,), "permissions", (permission,))

    def _put_expiring(self, body, *parts):
        path = _path(("v2",) + parts)
        meta = {}
        data = self._call("PUT", path, "created", body=body, meta=meta)
        if not isinstance(data["created"], bool):
            raise AuthTransportError("PUT %s: unexpected answer: created is not a bool" % path, 200, data)
        if "revision" not in data and meta.get("revision") is not None:
            data["revision"] = meta["revision"]
        return data

    def delete_permission(self, role, permission):
        """DELETE /api/v2/roles/{role}/permissions/{permission}: whether it
        was granted."""
        return self._flag("DELETE", "deleted", "roles", (role,), "permissions", (permission,))

    def members(self, role, page_size=None, consistency=None):
        """GET /api/v2/roles/{role}/members: the names of its direct
        members."""
        return self._list(("roles", (role,), "members"), page_size, lambda it: it["user"], consistency, True)

    def members_detailed(self, role, page_size=None, consistency=None):
        """GET /api/v2/roles/{role}/members: its direct members as ``{"user",
        "expires_at"}`` (``expires_at``: an RFC 3339 string, or ``None`` when
        permanent). Expired memberships are left out."""
        return self._list(("roles", (role,), "members"), page_size, _expiring("user"), consistency, True)

    def put_member(self, role, user, ttl=None, expires_at=None):
        """PUT /api/v2/roles/{role}/members/{user}: whether the membership
        is new. ``ttl`` (a Go duration such as ``"4h"``, seconds, or a
        ``timedelta``) or ``expires_at`` (a ``datetime``, naive ones taken as
        UTC, or an RFC 3339 string) make it time-bound; without them it is
        permanent. An existing membership gets the new expiry."""
        return self.put_member_detailed(role, user, ttl, expires_at)["created"]

    def put_member_detailed(self, role, user, ttl=None, expires_at=None):
        """:meth:`put_member` returning the answer: ``{"created",
        "expires_at", "revision", "role", "user"}``."""
        return self._put_expiring(_expiry(ttl, expires_at), "roles", (role,), "members", (user,))

    def delete_member(self, role, user):
        """DELETE /api/v2/roles/{role}/members/{user}: whether the user was
        a member."""
        return self._flag("DELETE", "deleted", "roles", (role,), "members", (user,))

    def parents(self, role, page_size=None, consistency=None):
        """GET /api/v2/roles/{role}/parents: the names of the roles it
        inherits from directly."""
        return self._list(("roles", (role,), "parents"), page_size, lambda it: it["name"], consistency, True)

    def put_parent(self, role, parent):
        """PUT /api/v2/roles/{role}/parents/{parent}: whether the link is
        new; a cycle raises with ``reason`` ``"role_cycle"``, a chain too
        deep with ``"role_depth"``."""
        return self._flag("PUT", "created", "roles", (role,), "parents", (parent,))

    def delete_parent(self, role, parent):
        """DELETE /api/v2/roles/{role}/parents/{parent}: whether it
        existed."""
        return self._flag("DELETE", "deleted", "roles", (role,), "parents", (parent,))

    # -- users and permissions ---------------------------------------------

    def user_roles(self, user, page_size=None, consistency=None):
        """GET /api/v2/users/{user}/roles: ``{"name", "inherited", "via"?}``
        for each role, direct and inherited."""
        return self._list(("users", (user,), "roles"), page_size, consistency=consistency, consistent=True)

    def user_permissions(self, user, page_size=None, consistency=None):
        """GET /api/v2/users/{user}/permissions: ``{"name", "roles"}`` for
        each effective permission."""
        return self._list(("users", (user,), "permissions"), page_size, consistency=consistency, consistent=True)

    def delete_user(self, user):
        """DELETE /api/v2/users/{user}: how many memberships were
        removed."""
        path = _path(("v2", "users", (user,)))
        n = self._call("DELETE", path, "memberships_removed")["memberships_removed"]
        if not isinstance(n, int) or isinstance(n, bool):
            raise AuthTransportError("DELETE %s: unexpected answer: memberships_removed is not a number" % path)
        return n

    def permission_roles(self, permission, page_size=None, consistency=None):
        """GET /api/v2/permissions/{permission}/roles: ``{"name",
        "inherited"}`` for each role that grants it."""
        return self._list(("permissions", (permission,), "roles"), page_size, consistency=consistency, consistent=True)

    def permission_users(self, permission, page_size=None, consistency=None):
        """GET /api/v2/permissions/{permission}/users: ``{"user", "roles"}``
        for each user who holds it."""
        return self._list(("permissions", (permission,), "users"), page_size, consistency=consistency, consistent=True)

    # -- policy ------------------------------------------------------------

    def export_policy(self, consistency=None):
        """GET /api/v2/policy/export: ``{"format": "casbin-csv", "policy":
        "<CSV>", "roles": N, "rules": N, "version": N, "revision": N}``;
        ``revision`` is the revision the export was taken at (from the
        ``X-Auth-Revision`` header when the body lacks it): a change-feed
        consumer resynchronising follows on from it."""
        meta = {}
        data = self._call("GET", self._with_consistency("/api/v2/policy/export", consistency), "policy", meta=meta)
        if "revision" not in data and meta.get("revision") is not None:
            data["revision"] = meta["revision"]
        return data

    def import_policy(self, policy, merge=False, dry_run=False):
        """POST /api/v2/policy/import: ``{"mode", "dry_run",
        "roles_created", "roles_deleted", "rules_added", "rules_removed",
        "version"}``. A policy that does not validate raises with ``reason``
        ``"invalid_policy"`` and ``details["errors"]``; never retried."""
        query = {}
        if dry_run:
            query["dry_run"] = "true"
        if merge:
            query["mode"] = "merge"
        path = "/api/v2/policy/import" + ("?" + urlencode(query) if query else "")
        return self._call("POST", path, "mode", body={"policy": policy})

    # -- change feed -------------------------------------------------------

    def changes(self, since=0, limit=None, cursor=None, wait=None):
        """GET /api/v2/changes: one page of the tenant's change feed,
        ``{"items": [...], "next_cursor": str | None, "revision": N}``.

        Items (in commit order) are ``{"at", "op", "revision", ...}`` with
        ``role``, ``permission``, ``user``, ``parent``, ``description`` or
        ``expires_at`` as the op has them. ``cursor`` (a previous
        ``next_cursor``) wins over ``since``. ``wait`` (seconds or a
        ``timedelta``, up to 60) lets the service hold the request until a
        change commits when there is nothing after the position. A position
        older than the feed keeps raises :class:`ChangesExpiredError`."""
        query = {}
        if cursor is not None:
            query["cursor"] = cursor
        elif since:
            query["since"] = str(int(since))
        if limit is not None:
            query["limit"] = str(limit)
        seconds = _seconds(wait, "wait") if wait is not None else 0
        if seconds:
            query["wait"] = _duration(seconds)
        path = "/api/v2/changes" + ("?" + urlencode(query) if query else "")
        data = self._call("GET", path, "items", wait=seconds)
        if not isinstance(data["items"], list) or not isinstance(data.get("revision"), int):
            raise AuthTransportError("GET %s: unexpected answer: no items or revision" % path, 200, data)
        return data

    def follow_changes(self, since=0, wait=30, page_size=None, stop=None):
        """A generator of the tenant's changes with a revision greater than
        ``since``, in commit order, without end: it follows each page's
        ``next_cursor`` and, once caught up, long-polls (each request held up
        to ``wait`` seconds) for the changes to come. It ends when ``stop``
        (a ``threading.Event`` or a callable) says so between two requests,
        or when the caller stops iterating. Failures raise; a
        :class:`ChangesExpiredError` means: resynchronise from
        :meth:`export_policy` and follow again from its ``revision``."""
        seconds = _seconds(wait, "wait")

        def stopped():
            if stop is None:
                return False
            return stop.is_set() if hasattr(stop, "is_set") else bool(stop())

        def feed():
            position, cursor = since, None
            while not stopped():
                page = self.changes(
                    since=position, limit=page_size, cursor=cursor, wait=None if cursor else seconds
                )
                for item in page["items"]:
                    yield item
                nxt = page.get("next_cursor")
                if nxt:
                    if nxt == cursor:
                        raise AuthTransportError("GET /api/v2/changes: next_cursor repeats the cursor", 200, page)
                    cursor = nxt
                    continue
                cursor = None
                position = max(position, page["revision"])
                if page["items"]:
                    position = max(position, page["items"][-1].get("revision", 0))

        return feed()

    # -- workflows ---------------------------------------------------------

    def put_workflow(
        self,
        name,
        schedule,
        permission=None,
        webhook_url=None,
        description=None,
        enabled=None,
        notify=None,
        catch_up=None,
    ):
        """PUT /api/v2/workflows/{name}: creates the workflow or replaces it
        as a whole; every argument left ``None`` (or ``""``) takes the
        service's default (``permission``: the name; no webhook, no
        description; ``enabled`` and ``catch_up``: ``True``; ``notify``:
        ``"changes"``).

        Returns the workflow (``{"name", "permission", "schedule",
        "webhook_url", "description", "enabled", "notify", "catch_up",
        "created_at", "updated_at", "next_run_at"}``) with ``"created"``,
        and, when it was created, ``"secret"``: the webhook signing secret,
        shown this once (a replace keeps it). A bad schedule raises with
        ``reason`` ``"invalid_schedule"``, a refused webhook URL with
        ``"webhook_refused"``."""
        path = _path(("v2", "workflows", (name,)))
        body = {"schedule": schedule}
        for key, value in (
            ("permission", permission),
            ("webhook_url", webhook_url),
            ("description", description),
            ("notify", notify),
        ):
            if value is not None and value != "":
                body[key] = value
        for key, value in (("enabled", enabled), ("catch_up", catch_up)):
            if value is not None:
                body[key] = bool(value)
        data = self._call("PUT", path, "created", body=body)
        if not isinstance(data["created"], bool) or "name" not in data:
            raise AuthTransportError("PUT %s: unexpected answer: no workflow" % path, 200, data)
        return data

    def get_workflow(self, name):
        """GET /api/v2/workflows/{name}: the workflow (as
        :meth:`put_workflow` returns it, without ``created``); a missing
        one raises with ``reason`` ``"workflow_not_found"``."""
        return self._call("GET", _path(("v2", "workflows", (name,))), "name")

    def workflows(self, page_size=None):
        """GET /api/v2/workflows: the workflows, sorted by name."""
        return self._list(("workflows",), page_size)

    def delete_workflow(self, name):
        """DELETE /api/v2/workflows/{name}: whether it existed (its runs are
        deleted with it)."""
        return self._flag("DELETE", "deleted", "workflows", (name,))

    def rotate_workflow_secret(self, name, grace=None):
        """POST /api/v2/workflows/{name}/secret: a new webhook signing
        secret, ``{"name", "secret", "previous_valid_until"}``. For ``grace``
        (a Go duration such as ``"24h"``, seconds, or a ``timedelta``; 0 to
        168 hours) deliveries are signed with the previous secret too;
        ``None`` lets the service choose (24 hours). Never retried: a repeat
        would rotate again."""
        path = _path(("v2", "workflows", (name,), "secret"))
        body = None if grace is None else {"grace": _duration(grace)}
        return self._call("POST", path, "secret", body=body)

    def run_workflow(self, name):
        """POST /api/v2/workflows/{name}/run: runs the workflow now and
        returns the run (``trigger`` ``"manual"``) once it finished, webhook
        attempts included, so give the client a ``timeout`` long enough for
        them. Never retried: after a failure the run may still have
        happened (see :meth:`workflow_runs`).

        A run is ``{"id", "trigger", "outcome", "attempt", "count",
        "scheduled_at", "started_at", "finished_at", "duration_ms", "users",
        "added", "removed", "error", "webhook": {"outcome", "attempts",
        "status", "error"} | None}``."""
        return self._call("POST", _path(("v2", "workflows", (name,), "run")), "id")

    def workflow_runs(self, name, page_size=None):
        """GET /api/v2/workflows/{name}/runs: its runs (as
        :meth:`run_workflow` returns them), newest first."""
        return self._list(("workflows", (name,), "runs"), page_size)


def _duration(value):
    """A grace as a Go duration string: a string is sent as it is; seconds
    (a number or a ``timedelta``) are written in whole seconds, or whole
    milliseconds when they have a fraction."""
    if isinstance(value, str):
        if not value:
            raise ValueError("empty duration")
        return value
    if isinstance(value, bool):
        raise TypeError("a duration is a string, a number of seconds or a timedelta, not a bool")
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if not isinstance(value, (int, float)):
        raise TypeError("a duration is a string, a number of seconds or a timedelta, not %s" % type(value).__name__)
    if value < 0:
        raise ValueError("a duration cannot be negative: %r" % (value,))
    ms = int(round(value * 1000))
    return "%ds" % (ms // 1000) if ms % 1000 == 0 else "%dms" % ms


def _consistency_value(value):
    """A consistency as sent: a string as it is, an int n as at_least:n."""
    if value is None or isinstance(value, str):
        return value
    return at_least(value)


def _expiring(name_key):
    """A list item picker keeping the name and expires_at."""
    return lambda it: {name_key: it[name_key], "expires_at": it.get("expires_at")}


def _revision(value):
    """An X-Auth-Revision value as a positive int, else None."""
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n if n > 0 else None


def _seconds(value, name):
    """A wait as seconds: a number or a timedelta, 0 to MAX_WAIT."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("%s is a number of seconds or a timedelta, got %r" % (name, value))
    if not 0 <= value <= MAX_WAIT:
        raise ValueError("%s must be 0 to %g seconds, got %r" % (name, MAX_WAIT, value))
    return value


def _expiry(ttl, expires_at):
    """The body of a time-bound PUT: None (permanent) or {"ttl"} or
    {"expires_at"}."""
    if ttl is not None and expires_at is not None:
        raise ValueError("give ttl or expires_at, not both")
    if ttl is not None:
        seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
        if not isinstance(seconds, str) and (isinstance(seconds, bool) or not seconds > 0):
            raise ValueError("ttl must be positive, got %r" % (ttl,))
        return {"ttl": _duration(ttl)}
    if expires_at is not None:
        if isinstance(expires_at, datetime):
            if expires_at.tzinfo is None:
                expires_at = expires_at.replace(tzinfo=timezone.utc)
            expires_at = expires_at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
        if not isinstance(expires_at, str) or not expires_at:
            raise TypeError("expires_at is a datetime or an RFC 3339 string, got %r" % (expires_at,))
        return {"expires_at": expires_at}
    return None


def _path(parts, query=None):
    """/api/ followed by parts: literal strings, and 1-tuples holding a value
    to escape as one segment."""
    segments = [_segment(p[0]) if isinstance(p, tuple) else p for p in parts]
    path = "/api/" + "/".join(segments)
    if query:
        path += "?" + urlencode(query)
    return path


def _decode(data):
    """The body as JSON, else as text, else as bytes (None when empty)."""
    if not data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    try:
        return json.loads(text)
    except ValueError:
        return text


class Client(EnhancedAuthClient):
    """The same client under its short name."""
