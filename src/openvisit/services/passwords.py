"""Password and PIN hashing with argon2id; hashes are upgraded when the parameters change."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.profiles import RFC_9106_LOW_MEMORY

from openvisit.domain.errors import InvalidInput

MIN_PASSWORD_LENGTH = 10


def production_hasher() -> PasswordHasher:
    """argon2id with the RFC 9106 low-memory profile (64 MiB, 3 passes, 4 lanes)."""
    return PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return production_hasher()


def hash_secret(secret: str) -> str:
    """An argon2id hash of a password, PIN or station key."""
    return _hasher().hash(secret)


def verify_secret(stored: str | None, secret: str) -> bool:
    """True when `secret` matches; a missing hash still costs one hash so timing does not tell."""
    if stored is None:
        _hasher().hash(secret)
        return False
    try:
        return _hasher().verify(stored, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher().check_needs_rehash(stored)


def check_password_strength(password: str, *, field: str = "password") -> None:
    """Refuse passwords too short to resist guessing."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            "auth.password_too_short",
            "The password must be at least 10 characters long.",
            params={"min": MIN_PASSWORD_LENGTH},
            field=field,
        )
    if len(password) > 1024:
        raise InvalidInput("auth.password_too_long", "The password is too long.", field=field)
