"""The one exception tree of Thrifty.

Every error that can reach a client is a ``ThriftyError``; foreign exceptions (aiohttp, SQLAlchemy,
pydantic, YAML) are mapped where they enter. The server maps each class to an HTTP status and an
OpenAI-shaped body in one place (``server/errors.py``)::

    ThriftyError                          500  server_error
    ├── ConfigError                       (start-up only: a bad config file or value)
    ├── InvalidRequestError               400  invalid_request_error
    │   ├── PayloadTooLargeError          413
    │   └── UnprocessableEntityError      422
    ├── AuthenticationError               401  invalid_api_key
    ├── PermissionDeniedError             403
    ├── NotFoundError                     404  (model_not_found, not_found)
    ├── RateLimitError                    429  (+ Retry-After)
    ├── ServiceUnavailableError           503
    └── UpstreamError                     502  an upstream provider failed
        ├── UpstreamStatusError           the upstream answered with an error status
        │   └── UpstreamRateLimitError    429 (+ Retry-After from the upstream)
        ├── UpstreamConnectionError       502  refused, reset, DNS
        ├── UpstreamTimeoutError          504  connect / first byte / total / stream idle
        └── UpstreamProtocolError         502  a malformed body or stream

``retryable`` says whether trying again (same or another deployment) may help.
"""

from __future__ import annotations

from typing import Any


class ThriftyError(Exception):
    """Root of every Thrifty error. ``code`` and ``param`` go to the OpenAI error body."""

    status: int = 500
    type: str = "server_error"
    code: str | None = "internal_error"
    retryable: bool = False
    ctx: Any = None
    """The request context, attached by the pipeline so the edge can name the served model."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The OpenAI error object: ``{"error": {"message", "type", "param", "code"}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class ConfigError(ThriftyError):
    """The configuration is invalid; the message names the key and what was expected."""

    code = "invalid_config"


class InvalidRequestError(ThriftyError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class PayloadTooLargeError(InvalidRequestError):
    status = 413
    code = "request_too_large"


class UnprocessableEntityError(InvalidRequestError):
    status = 422
    code = "unprocessable_entity"


class AuthenticationError(ThriftyError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDeniedError(ThriftyError):
    status = 403
    type = "invalid_request_error"
    code = "permission_denied"


class NotFoundError(ThriftyError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class RateLimitError(ThriftyError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after_s = retry_after_s
        if retry_after_s is not None:
            self.headers.setdefault("retry-after", str(max(0, int(retry_after_s + 0.999))))


class ServiceUnavailableError(ThriftyError):
    status = 503
    type = "server_error"
    code = "service_unavailable"
    retryable = True


class UpstreamError(ThriftyError):
    """An upstream provider failed. ``provider`` and ``deployment`` name where."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        deployment: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.provider = provider
        self.deployment = deployment


class UpstreamStatusError(UpstreamError):
    """The upstream answered with an error status.

    A 4xx that is the caller's fault (400, 404, 413, 422) keeps its status and the upstream's
    message, so the client sees what it would have seen without the gateway; other statuses
    become 502.
    """

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int,
        upstream_type: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.upstream_status = upstream_status
        if upstream_status in (400, 404, 413, 422):
            self.status = upstream_status
            self.type = upstream_type or "invalid_request_error"
            self.retryable = False
        elif upstream_status in (401, 403):
            # The gateway's own upstream credentials are wrong: not the client's fault.
            self.code = "upstream_auth_failed"
            self.retryable = False
        self.retryable = self.retryable and upstream_status not in (400, 401, 403, 404, 422)


class UpstreamRateLimitError(UpstreamStatusError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kw: Any) -> None:
        super().__init__(message, upstream_status=429, **kw)
        self.status = 429
        self.retry_after_s = retry_after_s
        self.headers.setdefault("retry-after", str(max(1, int((retry_after_s or 1) + 0.999))))


class UpstreamConnectionError(UpstreamError):
    code = "upstream_connection_error"


class UpstreamTimeoutError(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamProtocolError(UpstreamError):
    code = "upstream_bad_response"


__all__ = [
    "AuthenticationError",
    "ConfigError",
    "InvalidRequestError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServiceUnavailableError",
    "ThriftyError",
    "UnprocessableEntityError",
    "UpstreamConnectionError",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamRateLimitError",
    "UpstreamStatusError",
    "UpstreamTimeoutError",
]
