"""Logins (password, TOTP, station PIN), cookie sessions, bearer tokens, throttling, and the Principal."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import pyotp
import sqlalchemy as sa
from sqlalchemy.orm import Session

from openvisit.db import fast
from openvisit.db.models import (
    ApiToken,
    AuthSession,
    Facility,
    LoginAttempt,
    Resident,
    StaffGrant,
    Station,
    UserAccount,
    Visitor,
)
from openvisit.domain.enums import AccountKind, ActorKind, ResidentStatus, StationStatus
from openvisit.domain.errors import Forbidden, InvalidInput, NotAuthenticated, TooManyRequests
from openvisit.domain.principal import Grant, Principal
from openvisit.services import audit
from openvisit.services.context import AppContext, RequestMeta
from openvisit.services.passwords import hash_secret, needs_rehash, verify_secret

API_TOKEN_DAYS = 30
SESSION_TOUCH_INTERVAL = timedelta(minutes=5)
MAX_THROTTLE_DELAY = timedelta(minutes=15)
TOTP_ISSUER = "OpenVisit"

Channel = Literal["cookie", "token"]


def token_digest(token: str) -> str:
    """What we keep of a session or API token: its SHA-256 (the token itself is 256 random bits)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


# --- throttling -----------------------------------------------------------------------------------


def throttle_delay(failures: int, max_failures: int) -> timedelta:
    """No delay below the limit; from the limit on, 30 s doubling per further failure, capped at 15 min."""
    if failures < max_failures:
        return timedelta(0)
    return min(timedelta(seconds=30 * 2 ** (failures - max_failures)), MAX_THROTTLE_DELAY)


def check_throttle(ctx: AppContext, session: Session, subject: str, ip: str, now: datetime) -> None:
    """Refuse (429) while `subject` or `ip` has failed too often within the window."""
    window_start = now - timedelta(minutes=ctx.settings.login_window_minutes)
    for column, value in ((LoginAttempt.subject, subject), (LoginAttempt.ip, ip)):
        row = session.execute(
            sa.select(sa.func.count(), sa.func.max(LoginAttempt.at)).where(
                column == value, LoginAttempt.success.is_(False), LoginAttempt.at >= window_start
            )
        ).one()
        failures, last = int(row[0]), row[1]
        delay = throttle_delay(failures, ctx.settings.login_max_failures)
        if last is not None and delay:
            if last.tzinfo is None:
                last = last.replace(tzinfo=now.tzinfo)
            wait = last + delay - now
            if wait > timedelta(0):
                raise TooManyRequests(
                    "auth.throttled",
                    "Too many failed logins. Please wait before trying again.",
                    retry_after=max(1, int(wait.total_seconds()) + 1),
                )


def record_failure(ctx: AppContext, session: Session, subject: str, meta: RequestMeta, now: datetime) -> None:
    """Count a failed attempt for `subject`; the one that reaches the limit is audited."""
    session.add(LoginAttempt(at=now, subject=subject, ip=meta.ip, success=False))
    session.flush()
    window_start = now - timedelta(minutes=ctx.settings.login_window_minutes)
    failures = session.execute(
        sa.select(sa.func.count()).where(
            LoginAttempt.subject == subject,
            LoginAttempt.success.is_(False),
            LoginAttempt.at >= window_start,
        )
    ).scalar_one()
    if failures == ctx.settings.login_max_failures:
        audit.record(
            session,
            Principal(kind=ActorKind.SYSTEM, label="login-throttle"),
            "auth.throttled",
            "login",
            subject,
            at=now,
            after={"failures": int(failures), "window_minutes": ctx.settings.login_window_minutes},
            ip=meta.ip,
        )


# --- principals -----------------------------------------------------------------------------------


def principal_for_user(
    session: Session, user: UserAccount, *, second_factor_pending: bool = False
) -> Principal:
    """The Principal of a user account: its grants, or its visitor profile."""
    grants = tuple(
        Grant(role=g.role, facility_id=g.facility_id, link_center_id=g.link_center_id)
        for g in session.execute(sa.select(StaffGrant).where(StaffGrant.user_id == user.id)).scalars()
    )
    visitor_id = session.execute(sa.select(Visitor.id).where(Visitor.user_id == user.id)).scalar_one_or_none()
    return Principal(
        kind=ActorKind.USER,
        user_id=user.id,
        visitor_id=visitor_id,
        grants=grants,
        label=user.email,
        language=user.language,
        timezone=user.timezone,
        second_factor_pending=second_factor_pending,
    )


def principal_for_resident(resident: Resident, station_id: int | None, timezone: str) -> Principal:
    return Principal(
        kind=ActorKind.RESIDENT,
        resident_id=resident.id,
        station_id=station_id,
        label=f"resident {resident.number}",
        language=resident.language,
        timezone=timezone,
    )


def _totp_required(ctx: AppContext, user: UserAccount) -> bool:
    return user.kind is AccountKind.STAFF and ctx.settings.staff_totp_required


def _totp_ok(secret: str, code: str, now: datetime) -> bool:
    code = code.strip().replace(" ", "")
    return code.isdigit() and len(code) == 6 and pyotp.TOTP(secret).verify(code, for_time=now, valid_window=1)


# --- logins ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginResult:
    """A new cookie session or API token, and whether the person must still enrol TOTP."""

    token: str
    expires_at: datetime
    principal: Principal


def login(
    ctx: AppContext,
    email: str,
    password: str,
    meta: RequestMeta,
    *,
    totp_code: str | None = None,
    channel: Channel = "cookie",
) -> LoginResult:
    """Check an email and password (and TOTP for enrolled staff); open a session or issue an API token."""
    subject = email.strip().lower()
    now = ctx.clock()
    failure: Exception | None = None
    with ctx.db.write() as session:
        check_throttle(ctx, session, subject, meta.ip, now)
        user = session.execute(
            sa.select(UserAccount).where(UserAccount.email == subject)
        ).scalar_one_or_none()
        ok = verify_secret(user.password_hash if user else None, password)
        if ok and user is not None and not user.is_active:
            ok = False
        if ok and user is not None and user.totp_enrolled_at is not None and user.totp_secret:
            if not totp_code:
                raise InvalidInput(
                    "auth.totp_required",
                    "Enter the 6-digit code from your authenticator app.",
                    field="totp",
                )
            ok = _totp_ok(user.totp_secret, totp_code, now)
        if not ok or user is None:
            record_failure(ctx, session, subject, meta, now)
            failure = NotAuthenticated(
                "auth.invalid_credentials", "The email, password or code is not right."
            )
        else:
            pending = _totp_required(ctx, user) and user.totp_enrolled_at is None
            if pending and channel == "token":
                raise Forbidden(
                    "auth.totp_enrolment_required",
                    "Staff must enrol an authenticator app on the website before using the API.",
                )
            session.add(LoginAttempt(at=now, subject=subject, ip=meta.ip, success=True))
            if needs_rehash(user.password_hash):
                user.password_hash = hash_secret(password)
            user.last_login_at = now
            token = new_token()
            if channel == "cookie":
                expires_at = now + timedelta(hours=ctx.settings.session_hours)
                session.add(
                    AuthSession(
                        token_hash=token_digest(token),
                        user_id=user.id,
                        second_factor_done=not pending,
                        last_seen_at=now,
                        expires_at=expires_at,
                        ip=meta.ip,
                        user_agent=meta.user_agent[:300],
                    )
                )
            else:
                expires_at = now + timedelta(days=API_TOKEN_DAYS)
                session.add(
                    ApiToken(
                        token_hash=token_digest(token),
                        user_id=user.id,
                        name="api",
                        expires_at=expires_at,
                    )
                )
            principal = principal_for_user(session, user, second_factor_pending=pending)
            audit.record(
                session,
                principal,
                "auth.login",
                "user_account",
                user.id,
                at=now,
                after={"via": channel},
                ip=meta.ip,
            )
            return LoginResult(token=token, expires_at=expires_at, principal=principal)
    raise failure


def station_login(
    ctx: AppContext,
    station_code: str,
    station_key: str,
    number: str,
    pin: str,
    meta: RequestMeta,
    *,
    channel: Channel = "cookie",
) -> LoginResult:
    """A resident logs in at an enrolled station of their own facility with their number and PIN."""
    number = number.strip().upper()
    subject = f"resident:{number}"
    now = ctx.clock()
    failure: Exception | None = None
    with ctx.db.write() as session:
        check_throttle(ctx, session, subject, meta.ip, now)
        station = session.execute(
            sa.select(Station).where(Station.code == station_code.strip().upper())
        ).scalar_one_or_none()
        if station is None or not verify_secret(station.device_key_hash, station_key):
            raise NotAuthenticated("auth.station_unknown", "This device is not an enrolled station.")
        if station.status is not StationStatus.IN_SERVICE or station.facility_id is None:
            raise Forbidden("auth.station_unavailable", "This station is not in service.")
        resident = session.execute(sa.select(Resident).where(Resident.number == number)).scalar_one_or_none()
        ok = verify_secret(resident.pin_hash if resident else None, pin)
        if (
            not ok
            or resident is None
            or resident.status is not ResidentStatus.ACTIVE
            or resident.facility_id != station.facility_id
        ):
            record_failure(ctx, session, subject, meta, now)
            failure = NotAuthenticated("auth.invalid_credentials", "The number or PIN is not right.")
        else:
            session.add(LoginAttempt(at=now, subject=subject, ip=meta.ip, success=True))
            token = new_token()
            expires_at = now + timedelta(hours=2)
            if channel == "cookie":
                session.add(
                    AuthSession(
                        token_hash=token_digest(token),
                        resident_id=resident.id,
                        station_id=station.id,
                        second_factor_done=True,
                        last_seen_at=now,
                        expires_at=expires_at,
                        ip=meta.ip,
                        user_agent=meta.user_agent[:300],
                    )
                )
            else:
                session.add(
                    ApiToken(
                        token_hash=token_digest(token),
                        resident_id=resident.id,
                        station_id=station.id,
                        name=f"station {station.code}",
                        expires_at=expires_at,
                    )
                )
            facility = session.get(Facility, station.facility_id)
            tz = facility.timezone if facility else ctx.settings.default_timezone
            principal = principal_for_resident(resident, station.id, tz)
            audit.record(
                session,
                principal,
                "auth.station_login",
                "resident",
                resident.id,
                at=now,
                facility_id=resident.facility_id,
                after={"station": station.code},
                ip=meta.ip,
            )
            return LoginResult(token=token, expires_at=expires_at, principal=principal)
    raise failure


# --- resolving a request ----------------------------------------------------------------------------


def _subject_query(credential: type[ApiToken] | type[AuthSession]) -> sa.Select[*tuple[Any, ...]]:
    """Everything a Principal needs from a session or token row, in one statement: the row, its user
    (with the visitor profile and every grant, one row per grant) or its resident (with the facility's
    zone). Built once: a statement object is compiled once and its cache key computed once."""
    return (
        sa.select(
            credential.id,
            credential.user_id,
            credential.resident_id,
            credential.station_id,
            credential.expires_at,
            UserAccount.email,
            UserAccount.language.label("user_language"),
            UserAccount.timezone,
            UserAccount.is_active,
            Visitor.id.label("visitor_id"),
            StaffGrant.role,
            StaffGrant.facility_id,
            StaffGrant.link_center_id,
            Resident.number,
            Resident.language.label("resident_language"),
            Resident.status,
            Facility.timezone.label("facility_timezone"),
        )
        .select_from(credential)
        .outerjoin(UserAccount, UserAccount.id == credential.user_id)
        .outerjoin(Visitor, Visitor.user_id == UserAccount.id)
        .outerjoin(StaffGrant, StaffGrant.user_id == UserAccount.id)
        .outerjoin(Resident, Resident.id == credential.resident_id)
        .outerjoin(Facility, Facility.id == Resident.facility_id)
        .where(credential.token_hash == sa.bindparam("digest"))
        .order_by(StaffGrant.id)
    )


_TOKEN_SUBJECT = _subject_query(ApiToken).add_columns(ApiToken.revoked_at)
_SESSION_SUBJECT = _subject_query(AuthSession).add_columns(
    AuthSession.second_factor_done, AuthSession.last_seen_at
)


def _principal_of(ctx: AppContext, rows: Sequence[Any], pending: bool) -> Principal | None:
    """The Principal of a credential's rows (one per grant), or None when its subject may not act."""
    first = rows[0]
    if first.user_id is not None:
        if first.email is None or not first.is_active:
            return None
        return Principal(
            kind=ActorKind.USER,
            user_id=first.user_id,
            visitor_id=first.visitor_id,
            grants=tuple(
                Grant(role=r.role, facility_id=r.facility_id, link_center_id=r.link_center_id)
                for r in rows
                if r.role is not None
            ),
            label=first.email,
            language=first.user_language,
            timezone=first.timezone,
            second_factor_pending=pending,
        )
    if first.resident_id is not None:
        if first.number is None or first.status is not ResidentStatus.ACTIVE:
            return None
        return Principal(
            kind=ActorKind.RESIDENT,
            resident_id=first.resident_id,
            station_id=first.station_id,
            label=f"resident {first.number}",
            language=first.resident_language,
            timezone=first.facility_timezone or ctx.settings.default_timezone,
        )
    return None


def _subject_rows(ctx: AppContext, query: sa.Select[*tuple[Any, ...]], token: str) -> Sequence[Any]:
    """The credential's rows, read in one round trip. This is the first statement of every
    authenticated request: when it finds the connection dropped (a database restart), the pool has
    been invalidated by then and one retry gets a fresh connection."""
    params = {"digest": token_digest(token)}
    for attempt in (1, 2):
        try:
            with ctx.db.query_connection() as connection:
                return fast.rows(connection, query, params)
        except sa.exc.DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")


def principal_from_session(ctx: AppContext, token: str) -> Principal | None:
    """The Principal behind a session cookie, or None when it is unknown, forged or expired."""
    if not token or len(token) > 200:
        return None
    now = ctx.clock()
    rows = _subject_rows(ctx, _SESSION_SUBJECT, token)
    if not rows or rows[0].expires_at <= now:
        return None
    row = rows[0]
    principal = _principal_of(ctx, rows, not row.second_factor_done)
    if principal is not None and now - row.last_seen_at > SESSION_TOUCH_INTERVAL:
        # Sliding expiry, written at most every few minutes so reads stay reads.
        hours = ctx.settings.session_hours if row.user_id is not None else 2
        with ctx.db.write() as session:
            session.execute(
                sa.update(AuthSession)
                .where(AuthSession.id == row.id)
                .values(last_seen_at=now, expires_at=now + timedelta(hours=hours))
            )
    return principal


def principal_from_api_token(
    ctx: AppContext, token: str, *, connection: sa.Connection | None = None
) -> Principal | None:
    """The Principal behind a bearer token, or None when it is unknown, revoked or expired. Read on
    `connection` when given (the first statement of a use case's own transaction, which then needs no
    connection of its own: see scheduling.book_visit), else on a pooled connection of its own."""
    if not token or len(token) > 200:
        return None
    now = ctx.clock()
    if connection is None:
        rows = _subject_rows(ctx, _TOKEN_SUBJECT, token)
    else:
        rows = fast.rows(connection, _TOKEN_SUBJECT, {"digest": token_digest(token)})
    if not rows or rows[0].revoked_at is not None or rows[0].expires_at <= now:
        return None
    return _principal_of(ctx, rows, False)


def logout(ctx: AppContext, token: str, meta: RequestMeta) -> None:
    """End a cookie session or revoke a bearer token (whichever `token` is)."""
    digest = token_digest(token)
    now = ctx.clock()
    with ctx.db.write() as session:
        row = session.execute(
            sa.select(AuthSession).where(AuthSession.token_hash == digest)
        ).scalar_one_or_none()
        if row is not None:
            session.delete(row)
            return
        api = session.execute(sa.select(ApiToken).where(ApiToken.token_hash == digest)).scalar_one_or_none()
        if api is not None and api.revoked_at is None:
            api.revoked_at = now


# --- CSRF -----------------------------------------------------------------------------------------


def csrf_token_for(ctx: AppContext, seed: str) -> str:
    """The form token that matches a browser's CSRF cookie seed (a signed double-submit token)."""
    key = ctx.settings.secret_key.get_secret_value().encode("utf-8")
    return hmac.new(key, f"csrf|{seed}".encode(), hashlib.sha256).hexdigest()


def csrf_valid(ctx: AppContext, seed: str | None, submitted: str | None) -> bool:
    if not seed or not submitted or len(submitted) != 64:
        return False
    return hmac.compare_digest(csrf_token_for(ctx, seed), submitted)


# --- TOTP enrolment ---------------------------------------------------------------------------------


def begin_totp_enrolment(ctx: AppContext, principal: Principal) -> tuple[str, str]:
    """Give a staff member a new secret (kept until confirmed); returns it and its otpauth:// URI."""
    if principal.user_id is None:
        raise Forbidden()
    with ctx.db.write() as session:
        user = session.get(UserAccount, principal.user_id)
        if user is None:
            raise NotAuthenticated()
        if user.totp_enrolled_at is None or user.totp_secret is None:
            user.totp_secret = pyotp.random_base32()
        secret = user.totp_secret
        uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=TOTP_ISSUER)
    return secret, uri


def confirm_totp_enrolment(
    ctx: AppContext,
    principal: Principal,
    code: str,
    meta: RequestMeta,
    *,
    session_token: str | None,
) -> None:
    """Switch TOTP on once the person shows a valid code; the current session counts as verified."""
    if principal.user_id is None:
        raise Forbidden()
    now = ctx.clock()
    with ctx.db.write() as session:
        user = session.get(UserAccount, principal.user_id)
        if user is None or user.totp_secret is None:
            raise InvalidInput("auth.totp_not_started", "Start the enrolment first.")
        if user.totp_enrolled_at is not None:
            raise InvalidInput("auth.totp_already_enrolled", "An authenticator is already enrolled.")
        if not _totp_ok(user.totp_secret, code, now):
            raise InvalidInput(
                "auth.totp_invalid", "That code is not right. Try the newest one.", field="code"
            )
        user.totp_enrolled_at = now
        if session_token:
            session.execute(
                sa.update(AuthSession)
                .where(AuthSession.token_hash == token_digest(session_token))
                .values(second_factor_done=True)
            )
        audit.record(session, principal, "auth.totp_enrolled", "user_account", user.id, at=now, ip=meta.ip)


def verify_station(ctx: AppContext, station_code: str, station_key: str, meta: RequestMeta) -> str:
    """Check a station's device key before a kiosk is enrolled; returns the station's code."""
    code = station_code.strip().upper()
    subject = f"station:{code}"
    now = ctx.clock()
    failure: Exception | None = None
    with ctx.db.write() as session:
        check_throttle(ctx, session, subject, meta.ip, now)
        station = session.execute(sa.select(Station).where(Station.code == code)).scalar_one_or_none()
        if station is None or not verify_secret(station.device_key_hash, station_key):
            record_failure(ctx, session, subject, meta, now)
            failure = NotAuthenticated("auth.station_unknown", "The station code or key is not right.")
        else:
            return station.code
    raise failure


def totp_enrolled(ctx: AppContext, principal: Principal) -> bool:
    """Whether the person behind `principal` has a confirmed authenticator."""
    if principal.user_id is None:
        return False
    with ctx.db.read() as session:
        enrolled_at = session.execute(
            sa.select(UserAccount.totp_enrolled_at).where(UserAccount.id == principal.user_id)
        ).scalar_one_or_none()
    return enrolled_at is not None
