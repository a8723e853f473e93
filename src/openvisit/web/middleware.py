"""Pure ASGI middleware: security headers on every response, a cap on request bodies, the first guess
at the reader's language (before any login is looked up, so even early errors are translated)."""

from __future__ import annotations

import html
import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openvisit.domain.errors import N_
from openvisit.web.i18n import pick_language, translate
from openvisit.web.templating import LANGUAGE_COOKIE

CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
    "form-action 'self'; object-src 'none'"
)


class SecurityHeaders:
    """CSP, frame denial, no-sniff, a strict referrer policy, and HSTS over HTTPS."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.headers: list[tuple[bytes, bytes]] = [
            (b"content-security-policy", CSP.encode()),
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(self), microphone=(self), geolocation=()"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if hsts:
            self.headers.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in present]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


class LanguageGuess:
    """Sets scope state `language` from the language cookie or Accept-Language."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = dict(scope.get("headers", []))
            cookie_header = headers.get(b"cookie", b"").decode("latin-1")
            chosen = None
            # Read just our cookie by hand: one malformed cookie from elsewhere must not hide it.
            for part in cookie_header.split(";"):
                name, _, value = part.strip().partition("=")
                if name == LANGUAGE_COOKIE:
                    chosen = value.strip('"')
            accept = headers.get(b"accept-language", b"").decode("latin-1")
            scope.setdefault("state", {})["language"] = pick_language(chosen, accept_language=accept)
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuses bodies over `limit` bytes with 413 before the application reads them."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def _refuse(self, scope: Scope, send: Send) -> None:
        """The API's error body; for a page (a form with a photo too big, say), a page that says what to
        do, in the reader's language."""
        language = scope.get("state", {}).get("language", "en")
        if str(scope.get("path", "")).startswith("/api/"):
            body = json.dumps(
                {
                    "error": {
                        "code": "request.too_large",
                        "message": translate(language, "The request is too large."),
                    }
                }
            ).encode()
            kind = b"application/json"
        else:
            body = _too_large_page(language).encode()
            kind = b"text/html; charset=utf-8"
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.limit + 1
                if declared > self.limit:
                    await self._refuse(scope, send)
                    return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(scope, send)


def _too_large_page(language: str) -> str:
    title = html.escape(translate(language, N_("This file is too large")))
    text = html.escape(
        translate(
            language,
            N_(
                "Photos and documents can be at most 10 MB. Please go back with your browser's Back "
                "button and choose a smaller file (a phone can usually share a smaller copy of a photo)."
            ),
        )
    )
    back = html.escape(translate(language, N_("Go to the start page")))
    return (
        f'<!doctype html><html lang="{html.escape(language)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{title} · OpenVisit</title><link rel="stylesheet" href="/static/app.css"></head>'
        f'<body><main id="main"><section class="card"><h1>{title}</h1><p>{text}</p>'
        f'<p><a href="/">{back}</a></p></section></main></body></html>'
    )


class _BodyTooLarge(HTTPException):
    """Raised from receive(): the application's HTTP error handler turns it into the usual 413 body."""

    def __init__(self) -> None:
        super().__init__(status_code=413)
