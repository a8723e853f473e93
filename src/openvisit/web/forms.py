"""What every page route that takes a form needs: the status of a refusal, and the redirect after a
change (post/redirect/get)."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi.responses import RedirectResponse

from openvisit.domain.errors import DomainError
from openvisit.web.errors import STATUS_BY_KIND
from openvisit.web.errors import language_of as language_of  # the reader's language, for messages


def error_status(exc: DomainError | None) -> int:
    """The HTTP status a page answers with: 200, or the refusal's 4xx."""
    return 200 if exc is None else STATUS_BY_KIND.get(exc.kind, 400)


def see_other(path: str, **params: object) -> RedirectResponse:
    """303 to `path`, with the given query parameters (those that are None left out)."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=303)
