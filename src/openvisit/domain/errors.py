"""One tree of errors with stable codes; the web layer maps each branch to HTTP in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


def N_(message: str) -> str:  # noqa: N802 - gettext's conventional no-op marker
    """Marks an English message for the translation catalogs; the web layer translates it when shown."""
    return message


class DomainError(Exception):
    """A failure the caller can act on: a stable `code` and an English message (a msgid)."""

    kind: ClassVar[str] = "invalid"
    default_code: ClassVar[str] = "error"
    default_message: ClassVar[str] = N_("Something went wrong.")

    def __init__(
        self,
        code: str | None = None,
        message: str | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        field: str | None = None,
    ) -> None:
        self.code = code or self.default_code
        self.message = message or self.default_message
        self.params: dict[str, Any] = dict(params or {})
        self.field = field
        super().__init__(f"{self.code}: {self.message}")


class InvalidInput(DomainError):
    """The request itself is wrong (400/422)."""

    kind = "invalid"
    default_code = "request.invalid"
    default_message = N_("The request is not valid.")


class NotAuthenticated(DomainError):
    """No valid login (401)."""

    kind = "unauthenticated"
    default_code = "auth.required"
    default_message = N_("Please log in.")


class Forbidden(DomainError):
    """Logged in, but not allowed (403)."""

    kind = "forbidden"
    default_code = "auth.forbidden"
    default_message = N_("You are not allowed to do this.")


class NotFound(DomainError):
    """Missing, or not visible to this person: the two are never told apart (404)."""

    kind = "not_found"
    default_code = "not_found"
    default_message = N_("Not found.")


class Conflict(DomainError):
    """The state of things refuses the change (409)."""

    kind = "conflict"
    default_code = "conflict"
    default_message = N_("This conflicts with the current state.")


class TooManyRequests(DomainError):
    """Throttled (429)."""

    kind = "throttled"
    default_code = "rate_limited"
    default_message = N_("Too many attempts. Please wait and try again.")

    def __init__(self, code: str | None = None, message: str | None = None, *, retry_after: int = 60) -> None:
        super().__init__(code, message, params={"seconds": retry_after})
        self.retry_after = retry_after
