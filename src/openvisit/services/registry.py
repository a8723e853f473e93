"""A stranger becomes a visitor: registration (as family or as an attorney), email confirmation,
password reset, profile and children. Every answer that could tell whether an address is registered is
the same either way."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import sqlalchemy as sa

from openvisit.db.models import AttorneyProfile, Dependent, UserAccount, Visitor, VisitParticipant
from openvisit.domain.enums import AccountKind, ActorKind, VerificationStatus
from openvisit.domain.errors import N_, Conflict, Forbidden, InvalidInput, NotFound
from openvisit.domain.principal import Principal
from openvisit.domain.scheduling import ADULT_AGE, age_on
from openvisit.services import audit, auth, outbox, tokens
from openvisit.services.access import require_active
from openvisit.services.context import AppContext, RequestMeta
from openvisit.services.passwords import check_password_strength, hash_secret
from openvisit.services.users import (
    VisitorProfile,
    check_language,
    check_new_user,
    check_timezone,
    check_visitor_profile,
    insert_user,
    normalise_email,
    set_password,
)

CONFIRM_PURPOSE = "confirm-email"
RESET_PURPOSE = "reset-password"
CONFIRM_LIFETIME = timedelta(days=3)
RESET_LIFETIME = timedelta(hours=2)
REGISTRATION = Principal(kind=ActorKind.SYSTEM, label="registration")


@dataclass(frozen=True)
class AttorneyClaim:
    """What an attorney states when registering; staff verify it."""

    licence_number: str
    organisation: str


@dataclass(frozen=True)
class Registration:
    email: str
    password: str
    profile: VisitorProfile
    language: str = "en"
    timezone: str = "Europe/Moscow"
    attorney: AttorneyClaim | None = None


def _check_attorney(claim: AttorneyClaim) -> AttorneyClaim:
    licence = claim.licence_number.strip()
    organisation = claim.organisation.strip()
    if not 3 <= len(licence) <= 64:
        raise InvalidInput(
            "attorney.licence", N_("Please give your licence or bar number."), field="licence_number"
        )
    if not 2 <= len(organisation) <= 200:
        raise InvalidInput(
            "attorney.organisation", N_("Please give your bar association or firm."), field="organisation"
        )
    return AttorneyClaim(licence, organisation)


def _confirm_link(ctx: AppContext, user: UserAccount) -> str:
    token = tokens.sign(ctx, CONFIRM_PURPOSE, {"uid": user.id, "email": user.email}, CONFIRM_LIFETIME)
    return f"{ctx.settings.base_url}/register/confirm?token={token}"


def register(ctx: AppContext, form: Registration, meta: RequestMeta) -> None:
    """Create a visitor (or attorney) account and email a confirmation link. When the address is
    already registered nothing is created and that address is told instead, so the answer never
    reveals who has an account."""
    now = ctx.clock()
    check_password_strength(form.password)
    attorney = _check_attorney(form.attorney) if form.attorney is not None else None
    new = check_new_user(
        email=form.email,
        kind=AccountKind.VISITOR,
        display_name=f"{form.profile.first_name} {form.profile.last_name}".strip(),
        language=form.language,
        timezone=form.timezone,
        grants=(),
        visitor=form.profile,
        today=now.date(),
    )
    password_hash = hash_secret(form.password)
    with ctx.db.write() as session:
        auth.check_throttle(ctx, session, f"register:{new.email}", meta.ip, now)
        existing = session.execute(
            sa.select(UserAccount).where(UserAccount.email == new.email)
        ).scalar_one_or_none()
        if existing is not None:
            auth.record_failure(ctx, session, f"register:{new.email}", meta, now)
            outbox.enqueue_user(
                session, existing, "account_exists", now, {"login_url": f"{ctx.settings.base_url}/login"}
            )
            return
        user = insert_user(session, REGISTRATION, new, password_hash, at=now, ip=meta.ip)
        if attorney is not None:
            visitor_id = session.execute(sa.select(Visitor.id).where(Visitor.user_id == user.id)).scalar_one()
            profile = AttorneyProfile(
                visitor_id=visitor_id,
                licence_number=attorney.licence_number,
                organisation=attorney.organisation,
            )
            session.add(profile)
            session.flush()
            audit.record(
                session,
                REGISTRATION,
                "attorney.claimed",
                "visitor",
                visitor_id,
                at=now,
                after={"licence_number": attorney.licence_number, "organisation": attorney.organisation},
                ip=meta.ip,
            )
        outbox.enqueue_user(session, user, "confirm_email", now, {"url": _confirm_link(ctx, user)})


def resend_confirmation(ctx: AppContext, p: Principal) -> None:
    """Send the confirmation link again to a logged-in visitor who has not confirmed yet."""
    now = ctx.clock()
    with ctx.db.write() as session:
        user = session.get(UserAccount, p.user_id) if p.user_id is not None else None
        if user is None:
            raise Forbidden()
        if user.email_verified_at is None:
            outbox.enqueue_user(session, user, "confirm_email", now, {"url": _confirm_link(ctx, user)})


def confirm_email(ctx: AppContext, token: str, meta: RequestMeta) -> str:
    """Mark the address of a genuine confirmation link as confirmed; returns the address."""
    claims = tokens.verify(ctx, CONFIRM_PURPOSE, token)
    now = ctx.clock()
    with ctx.db.write() as session:
        user = session.get(UserAccount, claims.get("uid"))
        if user is None or user.email != claims.get("email"):
            raise InvalidInput(
                "token.invalid", N_("This link is not valid. Please ask for a new one."), field="token"
            )
        if user.email_verified_at is None:
            user.email_verified_at = now
            audit.record(
                session,
                REGISTRATION,
                "user.email_confirmed",
                "user_account",
                user.id,
                at=now,
                after={"email": user.email},
                ip=meta.ip,
            )
        return user.email


def _password_fingerprint(password_hash: str) -> str:
    # A reset link dies with the password it was made for: used once, or overtaken by a change.
    return hashlib.sha256(password_hash.encode("utf-8")).hexdigest()[:16]


def request_password_reset(ctx: AppContext, email: str, meta: RequestMeta) -> None:
    """Email a reset link when the address has an account; say nothing different when it has not."""
    address = normalise_email(email)
    now = ctx.clock()
    with ctx.db.write() as session:
        auth.check_throttle(ctx, session, f"reset:{address}", meta.ip, now)
        # Each request counts towards the limit, found or not, so the limit itself tells nothing.
        auth.record_failure(ctx, session, f"reset:{address}", meta, now)
        user = session.execute(
            sa.select(UserAccount).where(UserAccount.email == address)
        ).scalar_one_or_none()
        if user is None or not user.is_active:
            return
        token = tokens.sign(
            ctx,
            RESET_PURPOSE,
            {"uid": user.id, "fp": _password_fingerprint(user.password_hash)},
            RESET_LIFETIME,
        )
        outbox.enqueue_user(
            session,
            user,
            "password_reset",
            now,
            {"url": f"{ctx.settings.base_url}/password/reset?token={token}"},
        )


def reset_password(ctx: AppContext, token: str, password: str, meta: RequestMeta) -> None:
    """Set a new password from a genuine, unused reset link; every session of the account ends."""
    claims = tokens.verify(ctx, RESET_PURPOSE, token)
    with ctx.db.read() as session:
        user = session.get(UserAccount, claims.get("uid"))
        if user is None or _password_fingerprint(user.password_hash) != claims.get("fp"):
            raise InvalidInput(
                "token.invalid", N_("This link is not valid. Please ask for a new one."), field="token"
            )
        user_id = user.id
    set_password(ctx, Principal(kind=ActorKind.SYSTEM, label="password-reset"), user_id, password, meta=meta)


# --- profile and children ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """A visitor's own record as they see it."""

    user: UserAccount
    visitor: Visitor
    attorney: AttorneyProfile | None
    dependents: Sequence[Dependent]


def _own_visitor(p: Principal) -> int:
    require_active(p)
    if p.visitor_id is None:
        raise Forbidden("visitor.only", N_("This is for visitors."))
    return p.visitor_id


def profile(ctx: AppContext, p: Principal) -> Profile:
    """The visitor's own account, profile, attorney claim and children."""
    visitor_id = _own_visitor(p)
    with ctx.db.read() as session:
        visitor = session.get(Visitor, visitor_id)
        user = session.get(UserAccount, p.user_id)
        assert visitor is not None
        assert user is not None
        attorney = session.execute(
            sa.select(AttorneyProfile).where(AttorneyProfile.visitor_id == visitor_id)
        ).scalar_one_or_none()
        children = (
            session.execute(
                sa.select(Dependent).where(Dependent.visitor_id == visitor_id).order_by(Dependent.birth_date)
            )
            .scalars()
            .all()
        )
        return Profile(user, visitor, attorney, children)


def update_profile(
    ctx: AppContext, p: Principal, form: VisitorProfile, *, language: str, timezone: str, meta: RequestMeta
) -> None:
    """Change one's own names, date of birth, phone, city, language and zone. Changing the names or the
    date of birth of a verified visitor sends their identity back to review."""
    visitor_id = _own_visitor(p)
    now = ctx.clock()
    checked = check_visitor_profile(form, today=now.date())
    language = check_language(language)
    timezone = check_timezone(timezone)
    with ctx.db.write() as session:
        visitor = session.get(Visitor, visitor_id)
        user = session.get(UserAccount, p.user_id)
        assert visitor is not None
        assert user is not None
        before = {
            "last_name": visitor.last_name,
            "first_name": visitor.first_name,
            "middle_name": visitor.middle_name,
            "birth_date": visitor.birth_date.isoformat(),
            "phone": visitor.phone,
            "home_city": visitor.home_city,
            "language": user.language,
            "timezone": user.timezone,
        }
        identity_changed = (
            visitor.last_name,
            visitor.first_name,
            visitor.middle_name,
            visitor.birth_date,
        ) != (checked.last_name, checked.first_name, checked.middle_name, checked.birth_date)
        visitor.last_name, visitor.first_name, visitor.middle_name = (
            checked.last_name,
            checked.first_name,
            checked.middle_name,
        )
        visitor.birth_date, visitor.phone, visitor.home_city = (
            checked.birth_date,
            checked.phone,
            checked.home_city,
        )
        user.language, user.timezone = language, timezone
        user.display_name = f"{checked.first_name} {checked.last_name}"
        if identity_changed and visitor.verification is VerificationStatus.VERIFIED:
            visitor.verification = VerificationStatus.PENDING
        after = {
            **before,
            "last_name": visitor.last_name,
            "first_name": visitor.first_name,
            "middle_name": visitor.middle_name,
            "birth_date": visitor.birth_date.isoformat(),
            "phone": visitor.phone,
            "home_city": visitor.home_city,
            "language": language,
            "timezone": timezone,
            "verification": visitor.verification.value,
        }
        audit.record(
            session,
            p,
            "visitor.profile_changed",
            "visitor",
            visitor_id,
            at=now,
            before=before,
            after=after,
            ip=meta.ip,
        )


def add_dependent(
    ctx: AppContext, p: Principal, last_name: str, first_name: str, birth_date: date, meta: RequestMeta
) -> int:
    """Add a child (under 18, no login of their own) to one's account."""
    visitor_id = _own_visitor(p)
    now = ctx.clock()
    child = check_visitor_profile(VisitorProfile(last_name, first_name, birth_date), today=now.date())
    if age_on(child.birth_date, now.date()) >= ADULT_AGE:
        raise InvalidInput(
            "dependent.adult",
            N_("A child must be under 18; an adult registers their own account."),
            field="birth_date",
        )
    with ctx.db.write() as session:
        row = Dependent(
            visitor_id=visitor_id,
            last_name=child.last_name,
            first_name=child.first_name,
            birth_date=child.birth_date,
        )
        session.add(row)
        session.flush()
        audit.record(
            session,
            p,
            "dependent.added",
            "dependent",
            row.id,
            at=now,
            after={
                "visitor_id": visitor_id,
                "last_name": row.last_name,
                "first_name": row.first_name,
                "birth_date": row.birth_date.isoformat(),
            },
            ip=meta.ip,
        )
        return row.id


def remove_dependent(ctx: AppContext, p: Principal, dependent_id: int, meta: RequestMeta) -> None:
    """Remove one's own child from the account (their links go with them)."""
    visitor_id = _own_visitor(p)
    now = ctx.clock()
    with ctx.db.write() as session:
        row = session.get(Dependent, dependent_id)
        if row is None or row.visitor_id != visitor_id:
            raise NotFound("dependent.not_found", N_("No such child."))
        in_visits = session.execute(
            sa.select(VisitParticipant.id).where(VisitParticipant.dependent_id == row.id).limit(1)
        ).first()
        if in_visits is not None:
            # The visit history keeps who took part; a child who visited stays on the record.
            raise Conflict(
                "dependent.has_visits", N_("This child has taken part in visits and stays on record.")
            )
        audit.record(
            session,
            p,
            "dependent.removed",
            "dependent",
            row.id,
            at=now,
            before={"last_name": row.last_name, "first_name": row.first_name},
            ip=meta.ip,
        )
        session.delete(row)
