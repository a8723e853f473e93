"""Accounts: creating with every check, staff grants, passwords; changes audited, refusals write nothing."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa

from openvisit.db.models import (
    AuditEntry,
    AuditHead,
    Facility,
    LinkCenter,
    StaffGrant,
    UserAccount,
    Visitor,
)
from openvisit.domain.enums import AccountKind, ActorKind, Role
from openvisit.domain.errors import Conflict, Forbidden, InvalidInput, NotAuthenticated, NotFound
from openvisit.domain.principal import SYSTEM, Grant, Principal
from openvisit.services import audit, auth
from openvisit.services.context import AppContext, RequestMeta
from openvisit.services.users import (
    VisitorProfile,
    add_grant,
    create_user,
    grant_from_spec,
    remove_grant,
    set_password,
)
from tests.factories import make_facility, make_link_center

PASSWORD = "correct-horse-battery"
META = RequestMeta(ip="192.0.2.7")
PROFILE = VisitorProfile(
    last_name="Смирнова",
    first_name="Мария",
    middle_name="Алексеевна",
    birth_date=date(1987, 3, 21),
    phone="+7 900 000-00-01",
    home_city="Москва",
)


def _places(ctx: AppContext) -> tuple[int, int]:
    return make_facility(ctx).facility_id, make_link_center(ctx)


def _state(ctx: AppContext) -> tuple[int, int, str | None]:
    """Accounts, grants and the audit head: what a refused change must leave as it was."""
    with ctx.db.read() as session:
        users = session.execute(sa.select(sa.func.count()).select_from(UserAccount)).scalar_one()
        grants = session.execute(sa.select(sa.func.count()).select_from(StaffGrant)).scalar_one()
        head = session.get(AuditHead, 1)
        return users, grants, head.hash if head else None


def _principal(ctx: AppContext, user_id: int) -> Principal:
    with ctx.db.read() as session:
        user = session.get(UserAccount, user_id)
        assert user is not None
        return auth.principal_for_user(session, user)


def _staff(ctx: AppContext, email: str, *grants: Grant, actor: Principal = SYSTEM) -> int:
    return create_user(
        ctx,
        actor,
        email=email,
        password=PASSWORD,
        kind=AccountKind.STAFF,
        display_name=email.split("@")[0],
        grants=grants,
    )


def _last_audit(ctx: AppContext) -> AuditEntry:
    with ctx.db.read() as session:
        return session.execute(sa.select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).scalar_one()


# --- creating -------------------------------------------------------------------------------------


def test_create_staff_account_logs_in_with_its_grants(ctx: AppContext) -> None:
    facility_id, center_id = _places(ctx)
    user_id = create_user(
        ctx,
        SYSTEM,
        email="  Sam.Scheduler@Example.ORG ",
        password=PASSWORD,
        kind=AccountKind.STAFF,
        display_name=" Sam Scheduler ",
        language="ru",
        timezone="Asia/Krasnoyarsk",
        grants=[
            Grant(Role.SCHEDULER, facility_id=facility_id),
            Grant(Role.LINK_OPERATOR, link_center_id=center_id),
            Grant(Role.SCHEDULER, facility_id=facility_id),
        ],
        meta=META,
    )
    with ctx.db.read() as session:
        user = session.get(UserAccount, user_id)
        assert user is not None
        assert (user.email, user.display_name, user.language, user.timezone, user.kind) == (
            "sam.scheduler@example.org",
            "Sam Scheduler",
            "ru",
            "Asia/Krasnoyarsk",
            AccountKind.STAFF,
        )
        assert user.password_hash != PASSWORD
        assert user.email_verified_at is None
        assert user.totp_enrolled_at is None

    result = auth.login(ctx, "sam.scheduler@example.org", PASSWORD, META)
    assert result.principal.user_id == user_id
    assert set(result.principal.grants) == {
        Grant(Role.SCHEDULER, facility_id=facility_id),
        Grant(Role.LINK_OPERATOR, link_center_id=center_id),
    }


def test_create_visitor_account_with_profile(ctx: AppContext) -> None:
    user_id = create_user(
        ctx,
        SYSTEM,
        email="maria@example.org",
        password=PASSWORD,
        kind=AccountKind.VISITOR,
        display_name="Мария Смирнова",
        visitor=replace(PROFILE, last_name="  Смирнова  "),
        email_verified=True,
    )
    with ctx.db.read() as session:
        user = session.get(UserAccount, user_id)
        visitor = session.execute(sa.select(Visitor).where(Visitor.user_id == user_id)).scalar_one()
    assert user is not None
    assert user.timezone == ctx.settings.default_timezone
    assert user.email_verified_at == ctx.clock()
    assert (visitor.last_name, visitor.first_name, visitor.middle_name) == ("Смирнова", "Мария", "Алексеевна")
    assert (visitor.birth_date, visitor.phone, visitor.home_city) == (
        date(1987, 3, 21),
        "+7 900 000-00-01",
        "Москва",
    )
    assert _principal(ctx, user_id).visitor_id == visitor.id


def test_creation_is_audited_without_secrets(ctx: AppContext) -> None:
    facility_id, _ = _places(ctx)
    user_id = _staff(ctx, "clerk@example.org", Grant(Role.VETTING_CLERK, facility_id=facility_id))
    entry = _last_audit(ctx)
    assert (entry.action, entry.object_type, entry.object_id) == (
        "user.created",
        "user_account",
        str(user_id),
    )
    assert entry.actor_kind is ActorKind.SYSTEM
    assert entry.facility_id == facility_id
    assert entry.after == {
        "email": "clerk@example.org",
        "kind": "staff",
        "roles": [{"role": "vetting_clerk", "facility_id": facility_id, "link_center_id": None}],
    }
    with ctx.db.read() as session:
        password_hash = session.execute(
            sa.select(UserAccount.password_hash).where(UserAccount.id == user_id)
        ).scalar_one()
    recorded = json.dumps([entry.before, entry.after], ensure_ascii=False)
    assert PASSWORD not in recorded
    assert password_hash not in recorded
    assert audit.verify(ctx.db).ok


_VALID: dict[str, Any] = {
    "email": "someone@example.org",
    "password": PASSWORD,
    "kind": AccountKind.VISITOR,
    "display_name": "Someone",
    "language": "en",
    "timezone": "Europe/Moscow",
    "visitor": PROFILE,
}


_INVALID: list[tuple[dict[str, Any], str]] = [
    ({"email": "not-an-email"}, "user.invalid_email"),
    ({"email": "two@@example.org"}, "user.invalid_email"),
    ({"email": "nobody@localhost"}, "user.invalid_email"),
    ({"password": "short"}, "auth.password_too_short"),
    ({"language": "de"}, "user.invalid_language"),
    ({"timezone": "Mars/Olympus"}, "user.invalid_timezone"),
    ({"timezone": "Europe"}, "user.invalid_timezone"),
    ({"timezone": "../../etc/passwd"}, "user.invalid_timezone"),
    ({"display_name": "   "}, "user.invalid_name"),
    ({"visitor": replace(PROFILE, first_name="")}, "user.invalid_name"),
    ({"visitor": None}, "user.visitor_profile_required"),
    ({"visitor": replace(PROFILE, birth_date=date(2030, 1, 1))}, "user.invalid_birth_date"),
    ({"visitor": replace(PROFILE, birth_date=date(1850, 1, 1))}, "user.invalid_birth_date"),
    ({"visitor": replace(PROFILE, phone="call me")}, "user.invalid_phone"),
    ({"grants": [Grant(Role.SYSTEM_ADMIN)]}, "user.invalid_grant"),
    ({"kind": AccountKind.STAFF, "visitor": None}, "user.grant_required"),
    ({"kind": AccountKind.STAFF, "grants": [Grant(Role.SYSTEM_ADMIN)]}, "user.invalid_kind"),
]


def test_invalid_input_is_refused_and_writes_nothing(ctx: AppContext, subtests: pytest.Subtests) -> None:
    before = _state(ctx)
    for changes, code in _INVALID:
        with subtests.test(code=code, changes=changes):
            with pytest.raises(InvalidInput) as caught:
                create_user(ctx, SYSTEM, **{**_VALID, **changes})
            assert caught.value.code == code
    assert _state(ctx) == before


_BADLY_SCOPED: list[Grant] = [
    Grant(Role.SYSTEM_ADMIN, facility_id=1),
    Grant(Role.SYSTEM_ADMIN, link_center_id=1),
    Grant(Role.LINK_OPERATOR),
    Grant(Role.LINK_OPERATOR, facility_id=1),
    Grant(Role.LINK_OPERATOR, facility_id=1, link_center_id=1),
    Grant(Role.SCHEDULER),
    Grant(Role.SCHEDULER, link_center_id=1),
    Grant(Role.FACILITY_ADMIN, facility_id=1, link_center_id=1),
]


def test_grant_scope_must_match_the_role(ctx: AppContext, subtests: pytest.Subtests) -> None:
    before = _state(ctx)
    for grant in _BADLY_SCOPED:
        with subtests.test(grant=grant):
            with pytest.raises(InvalidInput) as caught:
                _staff(ctx, "staff@example.org", grant)
            assert caught.value.code == "user.invalid_grant"
    assert _state(ctx) == before


@pytest.mark.parametrize("missing", ["facility", "link_center"])
def test_grant_at_a_place_that_does_not_exist_is_refused(ctx: AppContext, missing: str) -> None:
    facility_id, center_id = _places(ctx)
    grant = (
        Grant(Role.INVESTIGATOR, facility_id=facility_id + 100)
        if missing == "facility"
        else Grant(Role.LINK_OPERATOR, link_center_id=center_id + 100)
    )
    before = _state(ctx)
    with pytest.raises(InvalidInput) as caught:
        _staff(ctx, "staff@example.org", grant)
    assert caught.value.code == "user.invalid_grant"
    assert _state(ctx) == before


def test_duplicate_email_is_a_conflict_and_writes_nothing(ctx: AppContext) -> None:
    _staff(ctx, "admin@example.org", Grant(Role.SYSTEM_ADMIN))
    before = _state(ctx)
    with pytest.raises(Conflict) as caught:
        create_user(ctx, SYSTEM, **{**_VALID, "email": " ADMIN@example.org"})
    assert caught.value.code == "user.email_taken"
    assert _state(ctx) == before


def test_only_a_system_admin_creates_staff(ctx: AppContext) -> None:
    facility_id, _ = _places(ctx)
    scheduler = _principal(ctx, _staff(ctx, "s@example.org", Grant(Role.SCHEDULER, facility_id=facility_id)))
    admin = _principal(ctx, _staff(ctx, "a@example.org", Grant(Role.SYSTEM_ADMIN)))
    visitor = _principal(ctx, create_user(ctx, SYSTEM, **_VALID))
    resident = Principal(kind=ActorKind.RESIDENT, resident_id=1)
    grant = Grant(Role.INVESTIGATOR, facility_id=facility_id)
    before = _state(ctx)
    for actor in (scheduler, visitor, resident):
        with pytest.raises(Forbidden) as caught:
            _staff(ctx, "new@example.org", grant, actor=actor)
        assert caught.value.code == "user.forbidden"
    with pytest.raises(Forbidden) as pending:
        _staff(ctx, "new@example.org", grant, actor=replace(admin, second_factor_pending=True))
    assert pending.value.code == "auth.totp_enrolment_required"
    assert _state(ctx) == before

    _staff(ctx, "new@example.org", grant, actor=admin)
    assert _last_audit(ctx).actor_id == admin.user_id
    # Staff may register a visitor (a walk-in family at a link center); visitors may not.
    create_user(ctx, scheduler, **{**_VALID, "email": "family@example.org"})
    with pytest.raises(Forbidden):
        create_user(ctx, visitor, **{**_VALID, "email": "friend@example.org"})


# --- grants -----------------------------------------------------------------------------------------


def test_add_and_remove_grants_are_audited(ctx: AppContext) -> None:
    facility_id, center_id = _places(ctx)
    user_id = _staff(ctx, "s@example.org", Grant(Role.SCHEDULER, facility_id=facility_id))
    monitor = Grant(Role.MONITORING_OFFICER, facility_id=facility_id)

    add_grant(ctx, SYSTEM, user_id, monitor, meta=META)
    entry = _last_audit(ctx)
    assert (entry.action, entry.object_id, entry.facility_id, entry.ip) == (
        "user.grant_added",
        str(user_id),
        facility_id,
        META.ip,
    )
    assert entry.after == {"role": "monitoring_officer", "facility_id": facility_id, "link_center_id": None}
    assert monitor in _principal(ctx, user_id).grants
    with pytest.raises(Conflict) as exists:
        add_grant(ctx, SYSTEM, user_id, monitor)
    assert exists.value.code == "user.grant_exists"

    remove_grant(ctx, SYSTEM, user_id, monitor)
    entry = _last_audit(ctx)
    assert entry.action == "user.grant_removed"
    assert entry.before == {"role": "monitoring_officer", "facility_id": facility_id, "link_center_id": None}
    assert monitor not in _principal(ctx, user_id).grants
    with pytest.raises(NotFound) as gone:
        remove_grant(ctx, SYSTEM, user_id, monitor)
    assert gone.value.code == "user.grant_not_found"

    before = _state(ctx)
    for bad in (Grant(Role.LINK_OPERATOR, facility_id=facility_id), Grant(Role.SCHEDULER, facility_id=9999)):
        with pytest.raises(InvalidInput, match=r"user\.invalid_grant"):
            add_grant(ctx, SYSTEM, user_id, bad)
    with pytest.raises(NotFound, match=r"user\.not_found"):
        add_grant(ctx, SYSTEM, 9999, monitor)
    scheduler = _principal(ctx, user_id)
    with pytest.raises(Forbidden):
        add_grant(ctx, scheduler, user_id, Grant(Role.LINK_OPERATOR, link_center_id=center_id))
    assert _state(ctx) == before


def test_visitors_hold_no_grants(ctx: AppContext) -> None:
    facility_id, _ = _places(ctx)
    visitor_id = create_user(ctx, SYSTEM, **_VALID)
    with pytest.raises(InvalidInput, match=r"user\.invalid_grant"):
        add_grant(ctx, SYSTEM, visitor_id, Grant(Role.SCHEDULER, facility_id=facility_id))


def test_the_last_system_admin_keeps_the_role(ctx: AppContext) -> None:
    first = _staff(ctx, "a1@example.org", Grant(Role.SYSTEM_ADMIN))
    with pytest.raises(Conflict) as caught:
        remove_grant(ctx, SYSTEM, first, Grant(Role.SYSTEM_ADMIN))
    assert caught.value.code == "user.last_system_admin"
    second = _staff(ctx, "a2@example.org", Grant(Role.SYSTEM_ADMIN))
    remove_grant(ctx, _principal(ctx, second), first, Grant(Role.SYSTEM_ADMIN))
    assert not _principal(ctx, first).grants


def test_grant_from_spec_resolves_codes(ctx: AppContext) -> None:
    facility_id, center_id = _places(ctx)
    with ctx.db.read() as session:
        facility, center = session.get(Facility, facility_id), session.get(LinkCenter, center_id)
    assert facility is not None and center is not None
    assert grant_from_spec(ctx, f"scheduler:{facility.code}") == Grant(
        Role.SCHEDULER, facility_id=facility_id
    )
    assert grant_from_spec(ctx, f" Link_Operator : {center.code}") == Grant(
        Role.LINK_OPERATOR, link_center_id=center_id
    )
    assert grant_from_spec(ctx, "system_admin") == Grant(Role.SYSTEM_ADMIN)
    for spec in (
        "boss",
        "scheduler",
        "scheduler:NOPE",
        f"link_operator:{facility.code}",
        f"system_admin:{facility.code}",
    ):
        with pytest.raises(InvalidInput) as caught:
            grant_from_spec(ctx, spec)
        assert caught.value.code == "user.invalid_grant", spec


# --- passwords ------------------------------------------------------------------------------------


def test_admin_sets_a_password_and_ends_every_login(ctx: AppContext) -> None:
    user_id = create_user(ctx, SYSTEM, **_VALID)
    session = auth.login(ctx, _VALID["email"], PASSWORD, META)
    token = auth.login(ctx, _VALID["email"], PASSWORD, META, channel="token")

    set_password(ctx, SYSTEM, user_id, "a-brand-new-password", meta=META)
    assert auth.principal_from_session(ctx, session.token) is None
    assert auth.principal_from_api_token(ctx, token.token) is None
    assert _last_audit(ctx).after == {"by": "admin", "sessions_ended": 1, "tokens_revoked": 1}
    with pytest.raises(NotAuthenticated):
        auth.login(ctx, _VALID["email"], PASSWORD, META)
    auth.login(ctx, _VALID["email"], "a-brand-new-password", META)


def test_own_password_needs_the_current_one(ctx: AppContext) -> None:
    user_id = create_user(ctx, SYSTEM, **_VALID)
    current = auth.login(ctx, _VALID["email"], PASSWORD, META)
    me = current.principal
    other = _principal(ctx, create_user(ctx, SYSTEM, **{**_VALID, "email": "other@example.org"}))
    with pytest.raises(NotAuthenticated) as no_current:
        set_password(ctx, me, user_id, "another-password")
    assert no_current.value.code == "auth.invalid_credentials"
    with pytest.raises(NotAuthenticated) as wrong_current:
        set_password(ctx, me, user_id, "another-password", current_password="wrong-password")
    assert wrong_current.value.code == "auth.invalid_credentials"
    with pytest.raises(InvalidInput) as weak:
        set_password(ctx, me, user_id, "short", current_password=PASSWORD)
    assert weak.value.code == "auth.password_too_short"
    with pytest.raises(Forbidden) as not_mine:
        set_password(ctx, other, user_id, "another-password")
    assert not_mine.value.code == "user.forbidden"

    set_password(ctx, me, user_id, "another-password", current_password=PASSWORD, keep_session=current.token)
    assert auth.principal_from_session(ctx, current.token) is not None
    assert _last_audit(ctx).after == {"by": "self", "sessions_ended": 0, "tokens_revoked": 0}
