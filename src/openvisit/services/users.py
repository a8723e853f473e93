"""Accounts: creating visitors and staff, granting and removing staff roles, setting passwords."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openvisit.db.models import ApiToken, AuthSession, Facility, LinkCenter, StaffGrant, UserAccount, Visitor
from openvisit.domain.enums import AccountKind, ActorKind, Role
from openvisit.domain.errors import N_, Conflict, Forbidden, InvalidInput, NotAuthenticated, NotFound
from openvisit.domain.principal import Grant, Principal
from openvisit.services import audit
from openvisit.services.access import require_active
from openvisit.services.auth import token_digest
from openvisit.services.context import AppContext, RequestMeta
from openvisit.services.passwords import check_password_strength, hash_secret, verify_secret

LANGUAGES: tuple[str, ...] = ("en", "ru")
"""Languages the interface and the messages are written in."""

# Deliberately loose: the address is proven by the verification mail, not by a pattern.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ()-]{4,30}$")
_EARLIEST_BIRTH_DATE = date(1900, 1, 1)


@dataclass(frozen=True)
class VisitorProfile:
    """The person behind a visitor account, as they register."""

    last_name: str
    first_name: str
    birth_date: date
    middle_name: str = ""
    phone: str | None = None
    home_city: str = ""


@dataclass(frozen=True)
class NewUser:
    """An account that passed every check that needs no database; built by `check_new_user`."""

    email: str
    kind: AccountKind
    display_name: str
    language: str
    timezone: str
    grants: tuple[Grant, ...]
    visitor: VisitorProfile | None


# --- checks without the database ------------------------------------------------------------------


def normalise_email(email: str) -> str:
    """The stored form of an email address: trimmed and lower-case, as login looks it up."""
    return email.strip().lower()


def check_email(email: str) -> str:
    """Return the normalised address, or raise user.invalid_email."""
    value = normalise_email(email)
    if len(value) > 254 or not _EMAIL.match(value):
        raise InvalidInput("user.invalid_email", "This is not an email address.", field="email")
    return value


def check_timezone(name: str) -> str:
    """Return `name` when it is a real IANA time zone, or raise user.invalid_timezone."""
    try:
        if not name or len(name) > 64:
            raise ValueError(name)
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(
            "user.invalid_timezone",
            "This is not a known time zone.",
            params={"timezone": name},
            field="timezone",
        ) from None
    return name


def check_language(language: str) -> str:
    """Return `language` when the interface speaks it, or raise user.invalid_language."""
    if language not in LANGUAGES:
        raise InvalidInput(
            "user.invalid_language",
            "This language is not available.",
            params={"language": language, "available": list(LANGUAGES)},
            field="language",
        )
    return language


def _check_name(value: str, field: str, *, required: bool = True, limit: int = 120) -> str:
    value = value.strip()
    if (required and not value) or len(value) > limit:
        raise InvalidInput("user.invalid_name", "Please give a name.", params={"max": limit}, field=field)
    return value


def check_visitor_profile(profile: VisitorProfile, *, today: date) -> VisitorProfile:
    """The profile with trimmed names, or user.invalid_name / invalid_birth_date / invalid_phone."""
    if not _EARLIEST_BIRTH_DATE <= profile.birth_date < today:
        raise InvalidInput("user.invalid_birth_date", "Please check the date of birth.", field="birth_date")
    phone = profile.phone.strip() if profile.phone else None
    if phone and not _PHONE.match(phone):
        raise InvalidInput("user.invalid_phone", "This is not a phone number.", field="phone")
    return VisitorProfile(
        last_name=_check_name(profile.last_name, "last_name"),
        first_name=_check_name(profile.first_name, "first_name"),
        middle_name=_check_name(profile.middle_name, "middle_name", required=False),
        birth_date=profile.birth_date,
        phone=phone or None,
        home_city=_check_name(profile.home_city, "home_city", required=False),
    )


def check_grant_scope(grant: Grant) -> None:
    """Raise user.invalid_grant unless the grant is scoped as the staff_grant table demands:
    system_admin everywhere, link_operator at one link center, every other role at one facility."""
    if grant.role is Role.SYSTEM_ADMIN:
        ok = grant.facility_id is None and grant.link_center_id is None
        message = N_("A system administrator holds the role everywhere, not at one place.")
    elif grant.role is Role.LINK_OPERATOR:
        ok = grant.link_center_id is not None and grant.facility_id is None
        message = N_("A link-center operator works at one link center.")
    else:
        ok = grant.facility_id is not None and grant.link_center_id is None
        message = N_("This role is held at one facility.")
    if not ok:
        raise InvalidInput("user.invalid_grant", message, params={"role": grant.role.value}, field="grants")


def check_new_user(
    *,
    email: str,
    kind: AccountKind,
    display_name: str,
    language: str,
    timezone: str,
    grants: Iterable[Grant],
    visitor: VisitorProfile | None,
    today: date,
) -> NewUser:
    """Everything about a new account that can be checked without the database; raises InvalidInput."""
    unique_grants = tuple(dict.fromkeys(grants))
    for grant in unique_grants:
        check_grant_scope(grant)
    if kind is AccountKind.VISITOR:
        if unique_grants:
            raise InvalidInput(
                "user.invalid_grant", "A visitor account holds no staff roles.", field="grants"
            )
        if visitor is None:
            raise InvalidInput(
                "user.visitor_profile_required",
                "A visitor account needs a last name, a first name and a date of birth.",
            )
        visitor = check_visitor_profile(visitor, today=today)
    else:
        if visitor is not None:
            raise InvalidInput("user.invalid_kind", "A staff account has no visitor profile.", field="kind")
        if not unique_grants:
            raise InvalidInput(
                "user.grant_required", "A staff account needs at least one role.", field="grants"
            )
    return NewUser(
        email=check_email(email),
        kind=kind,
        display_name=_check_name(display_name, "display_name", limit=200),
        language=check_language(language),
        timezone=check_timezone(timezone),
        grants=unique_grants,
        visitor=visitor,
    )


# --- who may do what ------------------------------------------------------------------------------


def check_may_manage_staff(actor: Principal) -> None:
    """Only a system administrator or the system itself creates staff and changes their roles."""
    require_active(actor)
    if actor.kind is ActorKind.SYSTEM or actor.is_system_admin:
        return
    raise Forbidden("user.forbidden")


def check_may_create(actor: Principal, kind: AccountKind) -> None:
    """Staff accounts: see check_may_manage_staff. Visitor accounts: the system (registration) or staff."""
    if kind is AccountKind.STAFF:
        check_may_manage_staff(actor)
        return
    require_active(actor)
    if actor.kind is ActorKind.SYSTEM or actor.is_staff:
        return
    raise Forbidden("user.forbidden")


# --- helpers that read or write in the caller's transaction ---------------------------------------


def _grant_record(grant: Grant) -> dict[str, Any]:
    return {
        "role": grant.role.value,
        "facility_id": grant.facility_id,
        "link_center_id": grant.link_center_id,
    }


def _only_facility(grants: Sequence[Grant]) -> int | None:
    """The facility an audit entry belongs to, so that facility's admin can read it; None when several."""
    facilities = {g.facility_id for g in grants if g.facility_id is not None}
    return facilities.pop() if len(facilities) == 1 else None


def _check_places_exist(session: Session, grants: Iterable[Grant]) -> None:
    for grant in grants:
        if grant.facility_id is not None and session.get(Facility, grant.facility_id) is None:
            raise InvalidInput(
                "user.invalid_grant",
                "No such facility.",
                params={"facility_id": grant.facility_id},
                field="grants",
            )
        if grant.link_center_id is not None and session.get(LinkCenter, grant.link_center_id) is None:
            raise InvalidInput(
                "user.invalid_grant",
                "No such link center.",
                params={"link_center_id": grant.link_center_id},
                field="grants",
            )


def insert_user(
    session: Session,
    actor: Principal,
    new: NewUser,
    password_hash: str,
    *,
    at: datetime,
    email_verified: bool = False,
    ip: str | None = None,
) -> UserAccount:
    """Add a checked account in the caller's transaction and audit it; Conflict when the email is taken."""
    check_may_create(actor, new.kind)
    _check_places_exist(session, new.grants)
    taken = session.execute(sa.select(UserAccount.id).where(UserAccount.email == new.email)).first()
    if taken is not None:
        raise Conflict("user.email_taken", "An account with this email already exists.", field="email")
    user = UserAccount(
        email=new.email,
        password_hash=password_hash,
        kind=new.kind,
        display_name=new.display_name,
        language=new.language,
        timezone=new.timezone,
        email_verified_at=at if email_verified else None,
    )
    session.add(user)
    try:
        session.flush()
    except sa.exc.IntegrityError:
        # Only a concurrent registration with the same address can get past the check above.
        raise Conflict(
            "user.email_taken", "An account with this email already exists.", field="email"
        ) from None
    for grant in new.grants:
        session.add(
            StaffGrant(
                user_id=user.id,
                role=grant.role,
                facility_id=grant.facility_id,
                link_center_id=grant.link_center_id,
            )
        )
    after: dict[str, Any] = {
        "email": new.email,
        "kind": new.kind.value,
        "roles": [_grant_record(g) for g in new.grants],
    }
    if new.visitor is not None:
        profile = new.visitor
        visitor = Visitor(
            user_id=user.id,
            last_name=profile.last_name,
            first_name=profile.first_name,
            middle_name=profile.middle_name,
            birth_date=profile.birth_date,
            phone=profile.phone,
            home_city=profile.home_city,
        )
        session.add(visitor)
        session.flush()
        after["visitor_id"] = visitor.id
    audit.record(
        session,
        actor,
        "user.created",
        "user_account",
        user.id,
        at=at,
        facility_id=_only_facility(new.grants),
        after=after,
        ip=ip,
    )
    return user


def _staff_user_for_update(session: Session, user_id: int) -> UserAccount:
    user = session.execute(
        sa.select(UserAccount).where(UserAccount.id == user_id).with_for_update()
    ).scalar_one_or_none()
    if user is None:
        raise NotFound("user.not_found", "No such account.")
    if user.kind is not AccountKind.STAFF:
        raise InvalidInput("user.invalid_grant", "A visitor account holds no staff roles.", field="grants")
    return user


def _grant_rows(user_id: int, grant: Grant) -> sa.Select[StaffGrant]:
    return sa.select(StaffGrant).where(
        StaffGrant.user_id == user_id,
        StaffGrant.role == grant.role,
        StaffGrant.facility_id.is_not_distinct_from(grant.facility_id),
        StaffGrant.link_center_id.is_not_distinct_from(grant.link_center_id),
    )


# --- use cases ------------------------------------------------------------------------------------


def create_user(
    ctx: AppContext,
    actor: Principal,
    *,
    email: str,
    password: str,
    kind: AccountKind,
    display_name: str,
    language: str = "en",
    timezone: str | None = None,
    grants: Sequence[Grant] = (),
    visitor: VisitorProfile | None = None,
    email_verified: bool = False,
    meta: RequestMeta | None = None,
) -> int:
    """Create an account with its grants or visitor profile in one audited transaction; return its id.

    The time zone defaults to the settings' default_timezone.
    """
    now = ctx.clock()
    new = check_new_user(
        email=email,
        kind=kind,
        display_name=display_name,
        language=language,
        timezone=timezone or ctx.settings.default_timezone,
        grants=grants,
        visitor=visitor,
        today=now.date(),
    )
    check_password_strength(password)
    # insert_user checks this again; asking first spares a refused caller the slow hash.
    check_may_create(actor, new.kind)
    # argon2 is slow on purpose; hashing before the transaction keeps SQLite's write lock short.
    password_hash = hash_secret(password)
    with ctx.db.write() as session:
        user = insert_user(
            session,
            actor,
            new,
            password_hash,
            at=now,
            email_verified=email_verified,
            ip=meta.ip if meta else None,
        )
        return user.id


def grant_from_spec(ctx: AppContext, spec: str) -> Grant:
    """A grant from "ROLE" or "ROLE:CODE" (a facility's code, or a link center's for link_operator)."""
    role_name, _, code = (part.strip() for part in spec.partition(":"))
    try:
        role = Role(role_name.lower())
    except ValueError:
        raise InvalidInput(
            "user.invalid_grant",
            "No such role.",
            params={"role": role_name, "roles": [r.value for r in Role]},
            field="grants",
        ) from None
    if role is Role.SYSTEM_ADMIN:
        if code:
            raise InvalidInput(
                "user.invalid_grant",
                "A system administrator holds the role everywhere, not at one place.",
                params={"role": role.value},
                field="grants",
            )
        return Grant(role)
    if not code:
        raise InvalidInput(
            "user.invalid_grant",
            "Give the code of the place where the role is held: ROLE:CODE.",
            params={"role": role.value},
            field="grants",
        )
    with ctx.db.read() as session:
        if role is Role.LINK_OPERATOR:
            center_id = session.execute(
                sa.select(LinkCenter.id).where(LinkCenter.code == code)
            ).scalar_one_or_none()
            if center_id is None:
                raise InvalidInput("user.invalid_grant", "No such link center.", params={"code": code})
            return Grant(role, link_center_id=center_id)
        facility_id = session.execute(
            sa.select(Facility.id).where(Facility.code == code)
        ).scalar_one_or_none()
        if facility_id is None:
            raise InvalidInput("user.invalid_grant", "No such facility.", params={"code": code})
        return Grant(role, facility_id=facility_id)


def add_grant(
    ctx: AppContext, actor: Principal, user_id: int, grant: Grant, *, meta: RequestMeta | None = None
) -> None:
    """Give a staff account one more role, audited; Conflict user.grant_exists when it holds it already."""
    check_may_manage_staff(actor)
    check_grant_scope(grant)
    with ctx.db.write() as session:
        _staff_user_for_update(session, user_id)
        _check_places_exist(session, [grant])
        if session.execute(_grant_rows(user_id, grant)).first() is not None:
            raise Conflict("user.grant_exists", "The account already holds this role.")
        session.add(
            StaffGrant(
                user_id=user_id,
                role=grant.role,
                facility_id=grant.facility_id,
                link_center_id=grant.link_center_id,
            )
        )
        audit.record(
            session,
            actor,
            "user.grant_added",
            "user_account",
            user_id,
            at=ctx.clock(),
            facility_id=grant.facility_id,
            after=_grant_record(grant),
            ip=meta.ip if meta else None,
        )


def remove_grant(
    ctx: AppContext, actor: Principal, user_id: int, grant: Grant, *, meta: RequestMeta | None = None
) -> None:
    """Take a role from a staff account, audited; the last system administrator's role is never removed."""
    check_may_manage_staff(actor)
    with ctx.db.write() as session:
        _staff_user_for_update(session, user_id)
        row = session.execute(_grant_rows(user_id, grant)).scalar_one_or_none()
        if row is None:
            raise NotFound("user.grant_not_found", "The account does not hold this role.")
        if grant.role is Role.SYSTEM_ADMIN:
            # Locking every system-admin grant keeps two admins from removing each other at once.
            admins = (
                session.execute(
                    sa.select(StaffGrant)
                    .join(UserAccount, UserAccount.id == StaffGrant.user_id)
                    .where(StaffGrant.role == Role.SYSTEM_ADMIN, UserAccount.is_active.is_(True))
                    .with_for_update()
                )
                .scalars()
                .all()
            )
            if all(a.id == row.id for a in admins):
                raise Conflict(
                    "user.last_system_admin", "The last system administrator cannot lose the role."
                )
        session.delete(row)
        audit.record(
            session,
            actor,
            "user.grant_removed",
            "user_account",
            user_id,
            at=ctx.clock(),
            facility_id=grant.facility_id,
            before=_grant_record(grant),
            ip=meta.ip if meta else None,
        )


def set_password(
    ctx: AppContext,
    actor: Principal,
    user_id: int,
    password: str,
    *,
    current_password: str | None = None,
    keep_session: str | None = None,
    meta: RequestMeta | None = None,
) -> None:
    """Change a password (one's own with the current one; anyone's as system admin or the system).

    Every session and API token of the account ends, except the session cookie `keep_session`.
    """
    require_active(actor)
    is_self = actor.user_id is not None and actor.user_id == user_id
    if not is_self and not (actor.kind is ActorKind.SYSTEM or actor.is_system_admin):
        raise Forbidden("user.forbidden")
    check_password_strength(password)
    new_hash = hash_secret(password)
    now = ctx.clock()
    with ctx.db.write() as session:
        user = session.execute(
            sa.select(UserAccount).where(UserAccount.id == user_id).with_for_update()
        ).scalar_one_or_none()
        if user is None:
            raise NotFound("user.not_found", "No such account.")
        # A stolen session must not be enough to take the account over.
        if is_self and not verify_secret(user.password_hash, current_password or ""):
            raise NotAuthenticated(
                "auth.invalid_credentials", "The current password is not right.", field="current_password"
            )
        user.password_hash = new_hash
        ended_sessions = sa.delete(AuthSession).where(AuthSession.user_id == user_id)
        if keep_session:
            ended_sessions = ended_sessions.where(AuthSession.token_hash != token_digest(keep_session))
        sessions = cast(sa.CursorResult[Any], session.execute(ended_sessions)).rowcount
        revoke = (
            sa.update(ApiToken)
            .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        tokens = cast(sa.CursorResult[Any], session.execute(revoke)).rowcount
        audit.record(
            session,
            actor,
            "user.password_set",
            "user_account",
            user_id,
            at=now,
            after={
                "by": "self" if is_self else "admin",
                "sessions_ended": sessions,
                "tokens_revoked": tokens,
            },
            ip=meta.ip if meta else None,
        )
