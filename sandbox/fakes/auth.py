"""The credentials the fakes read from a request (HTTP basic, bearer), and a constant-time comparison of secrets."""

from __future__ import annotations

import base64
import hmac

from starlette.requests import Request


def matches(given: str, want: str) -> bool:
    """`given` is non-empty and equals `want` (compared in constant time)."""
    return bool(given) and hmac.compare_digest(given.encode(), want.encode())


def basic(request: Request) -> tuple[str, str]:
    """(user, password) of an `Authorization: Basic` header; ("", "") without one or when it does not decode."""
    auth = request.headers.get("authorization", "")
    if not auth.lower().startswith("basic "):
        return "", ""
    try:
        user, _, pw = base64.b64decode(auth[6:].strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return "", ""
    return user, pw


def bearer(request: Request) -> str:
    """The token of an `Authorization: Bearer` header, or ""."""
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else ""
