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

Only idempotent requests (GET, HEAD, DELETE) are retried, on connection
errors and on answers of 429, 502, 503 and 504, with exponential backoff and
full jitter, honouring ``Retry-After``. POST is never retried.
"""

import json
import random
import threading
import time
from datetime import datetime, timezone
from urllib.parse import quote, urlencode, urlsplit

import urllib3
from urllib3.exceptions import HTTPError, MaxRetryError, ResponseError
from urllib3.util.retry import Retry

__all__ = [
    "AuthTransportError",
    "CircuitOpenError",
    "CircuitBreaker",
    "EnhancedAuthClient",
    "Client",
]

#: Methods that are safe to send twice; only these are ever retried.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "DELETE"})
#: Answers after which an idempotent request is retried.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


class AuthTransportError(Exception):
    """The service gave no usable answer.

    ``status`` is the HTTP status of a non-2xx answer, or ``None`` when there
    was no answer at all (connection refused or dropped, timeout, open
    circuit breaker). ``body`` is the answer's parsed JSON, its text when it
    is not JSON, or ``None``.
    """

    def __init__(self, message, status=None, body=None):
        super().__init__(message)
        self.status = status
        self.body = body


class CircuitOpenError(AuthTransportError):
    """The client's circuit breaker is open: the call was not sent."""


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
        self._retry = _Retry(
            total=max_retries,
            redirect=False,
            allowed_methods=IDEMPOTENT_METHODS,
            status_forcelist=RETRY_STATUSES,
            backoff_factor=backoff_factor,
            respect_retry_after_header=True,
            raise_on_status=False,
            max_retry_after=max_retry_after,
            backoff_cap=backoff_max,
        )
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

    def __repr__(self):
        return "%s(service_url=%r)" % (type(self).__name__, self.service_url)

    # -- transport ---------------------------------------------------------

    def _request(self, method, path):
        breaker = self.circuit_breaker
        if breaker is not None:
            breaker.acquire()
        outcome = None
        try:
            try:
                response = self._http.request(
                    method,
                    self.service_url + path,
                    retries=self._retry if method in IDEMPOTENT_METHODS else self._no_retry,
                    redirect=False,
                    preload_content=True,
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
            raise AuthTransportError(
                "%s %s: %d %s" % (method, path, status, message or response.reason or "error"), status, body
            )
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
