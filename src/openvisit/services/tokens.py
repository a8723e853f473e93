"""Signed, expiring tokens for links sent by email (confirm an address, reset a password).

A token is `payload.signature`, both URL-safe base64; the signature is an HMAC-SHA256 under the secret
key over the purpose and the payload, so a token for one purpose is worthless for another."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta
from typing import Any

from openvisit.domain.errors import N_, InvalidInput
from openvisit.services.context import AppContext


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(ctx: AppContext, purpose: str, body: str) -> str:
    key = ctx.settings.secret_key.get_secret_value().encode("utf-8")
    return _b64(hmac.new(key, f"{purpose}|{body}".encode(), hashlib.sha256).digest())


def sign(ctx: AppContext, purpose: str, claims: dict[str, Any], lifetime: timedelta) -> str:
    """A token carrying `claims` for `purpose`, valid for `lifetime` from now."""
    payload = {**claims, "exp": int((ctx.clock() + lifetime).timestamp())}
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8"))
    return f"{body}.{_signature(ctx, purpose, body)}"


def verify(ctx: AppContext, purpose: str, token: str) -> dict[str, Any]:
    """The claims of a genuine, unexpired token for `purpose`; otherwise one clear error."""
    invalid = InvalidInput(
        "token.invalid", N_("This link is not valid. Please ask for a new one."), field="token"
    )
    body, _, signature = token.strip().partition(".")
    if not body or not signature or len(token) > 2000:
        raise invalid
    if not hmac.compare_digest(_signature(ctx, purpose, body), signature):
        raise invalid
    try:
        claims: dict[str, Any] = json.loads(_unb64(body))
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid from exc
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int):
        raise invalid
    if datetime.fromtimestamp(claims["exp"], tz=ctx.clock().tzinfo) <= ctx.clock():
        raise InvalidInput(
            "token.expired", N_("This link has expired. Please ask for a new one."), field="token"
        )
    return claims
