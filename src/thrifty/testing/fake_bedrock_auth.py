"""SigV4 (and Bedrock API key) checks for the fake Bedrock server.

Every request needs ``Authorization``. A ``Bearer`` token must be one of the server's API keys.
A SigV4 header must be well formed::

    AWS4-HMAC-SHA256 Credential=<AKID>/<yyyymmdd>/<region>/bedrock/aws4_request,
    SignedHeaders=<...;host;...;x-amz-date;...>, Signature=<64 hex>

with the server's region, service ``bedrock``, an ``X-Amz-Date`` matching the scope date, and
``X-Amz-Security-Token`` signed when sent. When the access key id is one of the server's known
credentials the signature is recomputed with botocore over the request exactly as received
(raw path, query, signed headers, body bytes) and must match; unknown key ids are accepted
unverified unless ``strict``. Failures use AWS's codes and messages (all HTTP 403).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["AuthFailure", "check_auth"]

_SIGV4 = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<sig>[0-9a-f]{64})\s*"
)
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)


@dataclass(frozen=True, slots=True)
class AuthFailure:
    """Why a request was refused: the AWS error code and message (HTTP ``status``)."""

    code: str
    message: str
    status: int = 403


def _fail(code: str, message: str) -> AuthFailure:
    return AuthFailure(code, message)


def _recompute(
    secret: str,
    access_key: str,
    token: str | None,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    timestamp: str,
    region: str,
) -> str:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    request.context["timestamp"] = timestamp
    auth = SigV4Auth(Credentials(access_key, secret, token), "bedrock", region)
    canonical = auth.canonical_request(request)
    return str(auth.signature(auth.string_to_sign(request, canonical), request))


def check_auth(
    *,
    header: Callable[[str], str | None],
    raw_path: str,
    body: bytes,
    region: str,
    credentials: Mapping[str, str],
    api_keys: frozenset[str] = frozenset(),
    strict: bool = False,
) -> tuple[AuthFailure | None, str | None]:
    """(failure or None, the access key id or ``"bearer"``). ``header(name)`` returns a request
    header (all values joined with ``,``) or None; ``raw_path`` includes the query string."""
    auth = header("authorization")
    if not auth:
        return _fail("MissingAuthenticationTokenException", "Missing Authentication Token"), None
    if auth.startswith("Bearer "):
        if auth[7:].strip() in api_keys:
            return None, "bearer"
        return _fail("UnrecognizedClientException", "Invalid API Key format or value."), None
    m = _SIGV4.fullmatch(auth.strip())
    if m is None:
        return _fail(
            "IncompleteSignatureException",
            f"Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' "
            f"parameters. Authorization={auth[:40]}",
        ), None
    parts = m.group("cred").split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        return _fail("IncompleteSignatureException", "Credential is malformed."), None
    access_key, day, scope_region, service, _ = parts
    if service != "bedrock":
        return _fail(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: 'bedrock'. (got {service!r})",
        ), access_key
    if scope_region != region:
        return _fail(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region. (expected {region!r}, "
            f"got {scope_region!r})",
        ), access_key
    amz_date = header("x-amz-date") or ""
    if not _AMZ_DATE.fullmatch(amz_date) or amz_date[:8] != day:
        return _fail(
            "IncompleteSignatureException",
            "X-Amz-Date must be set (yyyymmddTHHMMSSZ) and match the credential scope date.",
        ), access_key
    signed = m.group("signed").split(";")
    token = header("x-amz-security-token")
    required = {"host", "x-amz-date"} | ({"x-amz-security-token"} if token else set())
    if not required.issubset(signed) or signed != sorted(signed):
        return _fail(
            "IncompleteSignatureException",
            "SignedHeaders must be sorted and include host, x-amz-date (and "
            "x-amz-security-token when sent).",
        ), access_key
    secret = credentials.get(access_key)
    if secret is None:
        if strict:
            return _fail(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ), access_key
        return None, access_key
    values: dict[str, str] = {}
    for name in signed:
        value = header(name)
        if value is None:
            return _fail("InvalidSignatureException", _MISMATCH), access_key
        values[name] = value
    url = f"http://{values['host']}{raw_path}"
    expected = _recompute(secret, access_key, token, url, values, body, amz_date, region)
    if not hmac.compare_digest(expected, m.group("sig")):
        return _fail("InvalidSignatureException", _MISMATCH), access_key
    return None, access_key
