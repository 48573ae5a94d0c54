"""Python client of auth-server, the multi-tenant RBAC authorization service.

>>> from auth import EnhancedAuthClient, AuthTransportError
>>> client = EnhancedAuthClient(api_key, "http://localhost:4000")  # doctest: +SKIP
"""

from auth.client import (
    FULL,
    MINIMIZE_LATENCY,
    ChangesExpiredError,
    ConsistencyUnavailableError,
    RevisionAheadError,
    at_least,
    AuthTransportError,
    CircuitBreaker,
    CircuitOpenError,
    Client,
    MAX_BATCH,
    V2,
    EnhancedAuthClient,
)
from auth import webhooks
from auth.webhooks import WebhookVerificationError

__version__ = "1.0.0"

__all__ = [
    "AuthTransportError",
    "ChangesExpiredError",
    "ConsistencyUnavailableError",
    "FULL",
    "MINIMIZE_LATENCY",
    "RevisionAheadError",
    "at_least",
    "CircuitBreaker",
    "CircuitOpenError",
    "Client",
    "EnhancedAuthClient",
    "MAX_BATCH",
    "V2",
    "WebhookVerificationError",
    "__version__",
    "webhooks",
]
