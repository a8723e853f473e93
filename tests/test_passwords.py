"""Passwords, PINs and station keys are stored as argon2id hashes with RFC 9106 parameters."""

from __future__ import annotations

import pytest

from openvisit.domain.errors import InvalidInput
from openvisit.services import passwords


def test_production_hashes_are_argon2id_rfc9106_low_memory() -> None:
    hashed = passwords.production_hasher().hash("a long enough password")
    assert hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert passwords.production_hasher().verify(hashed, "a long enough password")


def test_verify_and_refuse() -> None:
    stored = passwords.hash_secret("секретный пароль")
    assert passwords.verify_secret(stored, "секретный пароль")
    assert not passwords.verify_secret(stored, "секретный парол")
    assert not passwords.verify_secret(None, "anything")
    assert not passwords.verify_secret("not-a-hash", "anything")


def test_weak_passwords_are_refused() -> None:
    with pytest.raises(InvalidInput) as short:
        passwords.check_password_strength("short")
    assert short.value.code == "auth.password_too_short"
    with pytest.raises(InvalidInput):
        passwords.check_password_strength("x" * 2000)
    passwords.check_password_strength("ten chars!")
