"""Errors summitcast raises on purpose; each carries a message a person can act on.

SummitcastError
├── ValidationError        bad input: the caller can fix it (HTTP 422 / CLI exit 2)
│   └── ImportFormatError  a schedule or upload that cannot be read, with the place it broke
├── NotFoundError          the object does not exist or is not visible to the caller (404)
├── PermissionDeniedError  the caller is known but may not do this (403)
├── AuthenticationError    the caller is not known (401)
├── ConflictError          the request clashes with stored state (409)
├── RateLimitedError       too many requests from one client (429)
└── ConfigurationError     the server is set up wrongly and refuses to start
"""

from __future__ import annotations


class SummitcastError(Exception):
    """Base of every error summitcast raises deliberately."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationError(SummitcastError):
    """Input the caller can correct."""

    status_code = 422


class ImportFormatError(ValidationError):
    """A file that cannot be imported; the message names the line or field."""


class NotFoundError(SummitcastError):
    """The object does not exist, or the caller may not know that it does."""

    status_code = 404


class PermissionDeniedError(SummitcastError):
    """The caller is authenticated but lacks the role for this object."""

    status_code = 403


class AuthenticationError(SummitcastError):
    """The caller must log in first."""

    status_code = 401


class ConflictError(SummitcastError):
    """The request clashes with what is stored (a duplicate slug, say)."""

    status_code = 409


class RateLimitedError(SummitcastError):
    """Too many attempts from one client; retry later."""

    status_code = 429

    def __init__(self, message: str, *, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigurationError(SummitcastError):
    """Settings that must not be used to run a server."""

    status_code = 500
