"""Bedrock error codes → the ``UpstreamError`` tree.

Non-stream errors carry the code in the ``x-amzn-ErrorType`` header (``Code:http://...``) or the
body's ``__type`` / ``code``, and the message in ``{"message": ...}``. Errors inside a
ConverseStream are exception messages whose ``:exception-type`` is the lower-camel name
(``throttlingException``); both spellings are accepted here.

==========================================  ============================================
ThrottlingException, ServiceQuotaExceeded    ``UpstreamRateLimitError`` (429, retryable)
ServiceUnavailable, ModelNotReady,           ``UpstreamStatusError`` 5xx (retryable)
InternalServer
ModelError, ModelStreamError                 ``UpstreamStatusError`` 424 (retryable, 502)
ValidationException                          ``UpstreamStatusError`` 400 (not retryable)
AccessDenied and the SigV4 / token errors    ``UpstreamStatusError`` 403 (not retryable)
ResourceNotFoundException                    ``UpstreamStatusError`` 404 (not retryable)
ModelTimeoutException                        ``UpstreamTimeoutError`` (504, retryable)
==========================================  ============================================
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from thrifty.errors import (
    UpstreamError,
    UpstreamRateLimitError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from thrifty.providers.http import parse_retry_after

__all__ = ["bedrock_error", "error_code"]

_RATE_LIMITED = frozenset({"ThrottlingException", "ServiceQuotaExceededException"})
_AUTH = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
    }
)
_STATUS: dict[str, int] = {
    "ValidationException": 400,
    "ResourceNotFoundException": 404,
    "ServiceUnavailableException": 503,
    "ModelNotReadyException": 503,
    "InternalServerException": 500,
    "ModelErrorException": 424,
    "ModelStreamErrorException": 424,
}


def _canonical(code: str) -> str:
    """``throttlingException`` / ``com.amazon...#ThrottlingException`` → ``ThrottlingException``."""
    code = code.split(":", 1)[0].rsplit("#", 1)[-1].strip()
    return code[:1].upper() + code[1:]


def error_code(headers: Mapping[str, str], raw: bytes) -> tuple[str | None, str | None]:
    """(canonical error code, message) of a Bedrock error response."""
    code = headers.get("x-amzn-ErrorType") or headers.get("x-amzn-errortype")
    message: str | None = None
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        msg = data.get("message") or data.get("Message")
        message = str(msg) if msg else None
        if not code:
            found = data.get("__type") or data.get("code")
            code = str(found) if found else None
    return (_canonical(code) if code else None), message


def bedrock_error(
    code: str | None,
    message: str | None,
    status: int,
    *,
    provider: str,
    deployment: str,
    headers: Mapping[str, str] | None = None,
) -> UpstreamError:
    """The ``UpstreamError`` for a Bedrock error code (``status``: the HTTP status, or 0 for an
    in-stream exception)."""
    name = _canonical(code) if code else None
    text = message or f"upstream {provider} returned {name or f'HTTP {status}'}"
    if name:
        text = f"{text} ({name})" if message else text
    where = {"provider": provider, "deployment": deployment}
    retry_after = parse_retry_after(headers) if headers else None
    if name in _RATE_LIMITED or (name is None and status == 429):
        return UpstreamRateLimitError(text, retry_after_s=retry_after, **where)
    if name == "ModelTimeoutException" or (name is None and status == 408):
        return UpstreamTimeoutError(text, **where)
    if name in _AUTH:
        return UpstreamStatusError(text, upstream_status=403, **where)
    upstream_status = _STATUS.get(name or "")
    if upstream_status is None:
        upstream_status = status if status >= 400 else 500
    return UpstreamStatusError(
        text,
        upstream_status=upstream_status,
        upstream_type="invalid_request_error" if upstream_status in (400, 404) else None,
        **where,
    )
