"""The staff scheduling pages, driven as a browser would: session templates, blocked periods and
lockdowns, the day's calendar per station, deciding requests; who may use them; CSRF; Russian."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import sqlalchemy as sa
from fastapi.testclient import TestClient
from httpx2 import Response

from openvisit.db.models import BlockedPeriod, Notification, SessionTemplate, StaffGrant, UserAccount, Visit
from openvisit.domain.enums import ConnectionStatus, Role, VisitStatus
from openvisit.services.context import AppContext
from tests.conftest import FrozenClock
from tests.factories import (
    Place,
    connect,
    make_facility,
    make_resident,
    make_schedule,
    make_staff,
    make_visit,
    make_visitor,
    totp_now,
)
from tests.webutil import csrf_from, login

WED_16_LOCAL = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)  # 16:00 in Krasnoyarsk, where the factories build
THU_16_LOCAL = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)


def _staff_login(client: TestClient, ctx: AppContext, clock: FrozenClock, role: Role, place: Place) -> str:
    email, secret = make_staff(ctx, role, facility_id=place.facility_id)
    assert secret
    r = login(client, email, totp=totp_now(secret, clock()))
    assert r.status_code == 303, r.text
    return email


def _booked(ctx: AppContext, place: Place, starts_at: datetime = WED_16_LOCAL) -> tuple[int, int]:
    """A resident of `place` with an approved visit from an approved visitor; (resident id, visit id)."""
    resident_id, _ = make_resident(ctx, place)
    _, visitor_id = make_visitor(ctx)
    connect(ctx, resident_id, visitor_id, ConnectionStatus.APPROVED)
    return resident_id, make_visit(ctx, place, resident_id, visitor_id, starts_at=starts_at)


def _visit(ctx: AppContext, visit_id: int) -> Visit:
    with ctx.db.read() as s:
        visit = s.get(Visit, visit_id)
        assert visit is not None
        return visit


def _post(client: TestClient, page: str, path: str, data: dict[str, str | list[str]]) -> Response:
    token = csrf_from(client.get(page))
    return client.post(path, data={**data, "csrf_token": token}, follow_redirects=False)


# --- session templates --------------------------------------------------------------------------


def _template_form(place: Place, group_id: int, **changes: str | list[str]) -> dict[str, str | list[str]]:
    form: dict[str, str | list[str]] = {
        "facility_id": str(place.facility_id),
        "group_id": str(group_id),
        "weekday": "2",
        "start_time": "10:00",
        "end_time": "12:00",
        "slot_minutes": "45",
        "buffer_minutes": "10",
        "every_n_weeks": "2",
        "valid_from": "2026-03-01",
        "valid_to": "",
        "allow_social": "1",
        "allow_home": "1",
        "bookable_by": "public",
        "unit_ids": [str(place.unit_id)],
    }
    form.update(changes)
    return form


def test_a_scheduler_creates_edits_and_deletes_a_template(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    place = make_facility(ctx)
    group_id, _ = make_schedule(ctx, place, weekdays=())
    _staff_login(client, ctx, clock, Role.SCHEDULER, place)
    listing = client.get("/staff/templates")
    assert listing.status_code == 200
    assert "No session templates yet" in listing.text
    assert f'href="/staff/templates/new?facility_id={place.facility_id}"' in listing.text
    form = client.get(f"/staff/templates/new?facility_id={place.facility_id}")
    assert form.status_code == 200 and "Kiosks" in form.text and "Wednesday" in form.text

    page = f"/staff/templates/new?facility_id={place.facility_id}"
    r = _post(client, page, "/staff/templates/new", _template_form(place, group_id))
    assert r.status_code == 303
    listing = client.get(f"/staff/templates?facility_id={place.facility_id}&done=saved")
    text = listing.text
    assert "The session template is saved." in text
    assert "Wednesday" in text and "10:00–12:00" in text and "45 + 10 min" in text
    assert "Every 2 weeks" in text and "Mar 1, 2026 – …" in text and "Unit 1" in text
    assert "Social visit" in text and "Legal visit" not in text.split("<tbody>")[1]
    with ctx.db.read() as s:
        template = s.execute(sa.select(SessionTemplate)).scalar_one()
    assert (template.weekday, template.slot_minutes, template.every_n_weeks) == (2, 45, 2)
    assert not template.allow_legal and not template.allow_link_center

    # A visit of 90 minutes is refused next to its field, and what was typed stays in the form.
    bad = _post(client, page, "/staff/templates/new", _template_form(place, group_id, slot_minutes="90"))
    assert bad.status_code == 400
    html = bad.text
    assert '<p class="field-error" id="error-slot_minutes">Visits last from 15 to 60 minutes.</p>' in html
    assert re.search(
        r'id="slot_minutes"[^>]*value="90" aria-invalid="true" aria-describedby="error-slot_minutes"', html
    )
    nothing = _post(
        client, page, "/staff/templates/new", _template_form(place, group_id, allow_social="", allow_legal="")
    )
    assert "Allow social visits, legal visits or both." in nothing.text

    edit_page = f"/staff/templates/{template.id}/edit?facility_id={place.facility_id}"
    edit = client.get(edit_page)
    assert edit.status_code == 200 and 'value="10:00"' in edit.text and 'value="45"' in edit.text
    r = _post(
        client,
        edit_page,
        f"/staff/templates/{template.id}/edit",
        _template_form(place, group_id, end_time="13:00"),
    )
    assert r.status_code == 303
    assert "10:00–13:00" in client.get("/staff/templates").text

    r = _post(
        client,
        "/staff/templates",
        f"/staff/templates/{template.id}/delete",
        {"facility_id": str(place.facility_id)},
    )
    assert r.status_code == 303
    assert "No session templates yet" in client.get("/staff/templates").text
    with ctx.db.read() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(SessionTemplate)).scalar_one() == 0


def test_templates_of_another_facility_are_not_found(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    place = make_facility(ctx)
    other = make_facility(ctx)
    other_group, _ = make_schedule(ctx, other, weekdays=(1,))
    _staff_login(client, ctx, clock, Role.SCHEDULER, place)
    assert client.get(f"/staff/templates?facility_id={other.facility_id}").status_code == 404
    with ctx.db.read() as s:
        foreign = s.execute(sa.select(SessionTemplate.id)).scalar_one()
    assert client.get(f"/staff/templates/{foreign}/edit?facility_id={other.facility_id}").status_code == 404
    r = _post(client, "/staff/templates", "/staff/templates/new", _template_form(other, other_group))
    assert r.status_code == 404
    r = _post(client, "/staff/templates", f"/staff/templates/{foreign}/delete", {})
    assert r.status_code == 404
    with ctx.db.read() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(SessionTemplate)).scalar_one() == 1


# --- blocked periods and lockdowns --------------------------------------------------------------


def _block_form(place: Place, **changes: str) -> dict[str, str | list[str]]:
    form: dict[str, str | list[str]] = {
        "facility_id": str(place.facility_id),
        "kind": "blocked",
        "start_date": "2026-03-10",
        "start_time": "00:00",
        "end_date": "2026-03-11",
        "end_time": "00:00",
        "unit_id": "",
        "station_id": "",
        "reason": "Quarantine",
    }
    form.update(changes)
    return form


def test_a_lockdown_cancels_the_units_visits_and_says_how_many(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    place = make_facility(ctx)
    make_schedule(ctx, place)
    _resident_id, visit_id = _booked(ctx, place)
    _staff_login(client, ctx, clock, Role.SCHEDULER, place)
    page = client.get("/staff/blocks")
    assert page.status_code == 200 and "Visits are not stopped at any time ahead." in page.text

    # A blocked date with nothing booked on it.
    r = _post(client, "/staff/blocks", "/staff/blocks", _block_form(place))
    assert r.status_code == 303
    location = r.headers["location"]
    assert "cancelled=0" in location and "notified=0" in location
    done = client.get(location).text
    assert "0 visits were cancelled" in done
    assert "Mar 10, 2026 00:00 (Krasnoyarsk, UTC+7)" in done and "Quarantine" in done

    # A lockdown of the resident's unit on Wednesday: the visit there is cancelled, everyone told.
    r = _post(
        client,
        "/staff/blocks",
        "/staff/blocks",
        _block_form(
            place,
            kind="lockdown",
            start_date="2026-03-04",
            start_time="12:00",
            end_date="2026-03-04",
            end_time="18:00",
            unit_id=str(place.unit_id),
            reason="Search of the unit",
        ),
    )
    assert r.status_code == 303
    done = client.get(r.headers["location"]).text
    assert "1 visit was cancelled" in done and "2 people were notified." in done
    assert "Lockdown" in done and "Unit 1" in done and "Search of the unit" in done
    visit = _visit(ctx, visit_id)
    assert visit.status is VisitStatus.CANCELLED and visit.reason == "lockdown"
    with ctx.db.read() as s:
        told = s.execute(sa.select(Notification.template).where(Notification.visit_id == visit_id)).scalars()
        assert sorted(told) == ["visit_cancelled", "visit_cancelled"]
        blocks = s.execute(sa.select(BlockedPeriod).order_by(BlockedPeriod.id)).scalars().all()
    assert blocks[1].starts_at == datetime(2026, 3, 4, 5, 0, tzinfo=UTC)
    assert blocks[1].unit_id == place.unit_id

    # Lifting the first block: its day is bookable again; the cancelled visit stays cancelled.
    r = _post(
        client, "/staff/blocks", f"/staff/blocks/{blocks[0].id}/lift", {"facility_id": str(place.facility_id)}
    )
    assert r.status_code == 303
    after = client.get(r.headers["location"]).text
    assert "The blocked period is lifted." in after and "Quarantine" not in after
    assert _visit(ctx, visit_id).status is VisitStatus.CANCELLED


def test_block_form_mistakes_are_shown_beside_their_fields(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    # Berlin moves its clocks from 02:00 to 03:00 on 29 March 2026: 02:30 does not exist there.
    place = make_facility(ctx, tz="Europe/Berlin")
    _staff_login(client, ctx, clock, Role.FACILITY_ADMIN, place)
    gap = _post(
        client,
        "/staff/blocks",
        "/staff/blocks",
        _block_form(place, start_date="2026-03-29", start_time="02:30"),
    )
    assert gap.status_code == 400
    html = gap.text
    assert 'id="error-starts_at"' in html and "the clocks change" in html
    assert 'value="2026-03-29"' in html and 'value="Quarantine"' in html
    backwards = _post(client, "/staff/blocks", "/staff/blocks", _block_form(place, end_date="2026-03-09"))
    assert '<p class="field-error" id="error-ends_at">The end must be after the start.</p>' in backwards.text
    no_date = _post(client, "/staff/blocks", "/staff/blocks", _block_form(place, end_date=""))
    assert no_date.status_code == 400
    assert '<p class="field-error" id="error-ends_at">Please give the date.</p>' in no_date.text
    no_reason = _post(client, "/staff/blocks", "/staff/blocks", _block_form(place, reason="  "))
    assert '<p class="field-error" id="error-reason">Please give a reason.</p>' in no_reason.text
    with ctx.db.read() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(BlockedPeriod)).scalar_one() == 0


# --- calendar -----------------------------------------------------------------------------------


def test_the_calendar_shows_each_station_and_who_is_booked(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    place = make_facility(ctx)
    _, stations = make_schedule(ctx, place, extra_kiosks=1)
    _resident_id, _visit_id = _booked(ctx, place)
    _staff_login(client, ctx, clock, Role.SCHEDULER, place)
    today = client.get("/staff/calendar")
    assert today.status_code == 200 and "Monday, March 2, 2026" in today.text
    assert "Петров" not in today.text

    page = client.get(f"/staff/calendar?facility_id={place.facility_id}&date=2026-03-04").text
    assert "Wednesday, March 4, 2026" in page
    own, other = page.split(f'id="station-{stations[1]}"')
    mine = own.split(f'id="station-{stations[0]}"')[1]
    assert "16:00–16:30" in mine and "Петров Иван Сергеевич" in mine and "R-" in mine
    assert "Иванова Анна" in mine and "1 person" in mine and "Approved" in mine
    assert "No visits." in other
    assert "date=2026-03-03" in page and "date=2026-03-05" in page
    assert "Петров" not in client.get(f"/staff/calendar?facility_id={place.facility_id}&date=2026-03-05").text


def test_someone_working_in_two_facilities_chooses_one(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    first, second = make_facility(ctx), make_facility(ctx)
    email, secret = make_staff(ctx, Role.SCHEDULER, facility_id=first.facility_id)
    assert secret
    with ctx.db.write() as s:
        user_id = s.execute(sa.select(UserAccount.id).where(UserAccount.email == email)).scalar_one()
        s.add(StaffGrant(user_id=user_id, role=Role.SCHEDULER, facility_id=second.facility_id))
    login(client, email, totp=totp_now(secret, clock()))
    page = client.get("/staff/calendar").text
    assert '<select id="facility_id" name="facility_id">' in page
    assert "Facility " in page and f'<option value="{second.facility_id}"' in page
    chosen = client.get(f"/staff/calendar?facility_id={second.facility_id}&date=2026-03-04").text
    assert re.search(rf'<option value="{second.facility_id}" selected>', chosen)


def test_a_clerk_approves_one_request_and_rejects_another(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    place = make_facility(ctx)
    make_schedule(ctx, place)
    _, first = _booked(ctx, place, WED_16_LOCAL)
    _, second = _booked(ctx, place, THU_16_LOCAL)
    with ctx.db.write() as s:
        s.execute(sa.update(Visit).values(status=VisitStatus.REQUESTED))
    _staff_login(client, ctx, clock, Role.VETTING_CLERK, place)
    page = client.get("/staff/requests")
    assert page.status_code == 200
    assert page.text.count('class="card request"') == 2
    assert '<option value="unclear_id">Identity document unclear</option>' in page.text
    assert "Mar 4, 2026 16:00 (Krasnoyarsk, UTC+7)" in page.text

    r = _post(
        client,
        "/staff/requests",
        f"/staff/requests/{first}/decision",
        {"decision": "approve", "facility_id": str(place.facility_id)},
    )
    assert r.status_code == 303
    assert _visit(ctx, first).status is VisitStatus.APPROVED

    # A rejection needs one of the preset reasons, shown in the request's own row.
    no_reason = _post(
        client,
        "/staff/requests",
        f"/staff/requests/{second}/decision",
        {"decision": "reject", "facility_id": str(place.facility_id)},
    )
    assert no_reason.status_code == 400
    assert f'id="request-{second}-error"><p>Please choose one of the listed reasons.' in no_reason.text

    r = _post(
        client,
        "/staff/requests",
        f"/staff/requests/{second}/decision",
        {
            "decision": "reject",
            "reason": "unclear_id",
            "note": "Send a clearer photo",
            "facility_id": str(place.facility_id),
        },
    )
    assert r.status_code == 303
    rejected = _visit(ctx, second)
    assert rejected.status is VisitStatus.REJECTED
    assert (rejected.reason, rejected.reason_note) == ("unclear_id", "Send a clearer photo")
    done = client.get(r.headers["location"]).text
    assert "The request is rejected; everyone is told why." in done and "No requests are waiting." in done

    # Deciding again is refused: the visit no longer waits.
    again = _post(client, "/staff/requests", f"/staff/requests/{first}/decision", {"decision": "approve"})
    assert again.status_code == 409
    assert "This visit is not waiting for a decision." in again.text


# --- who may use the pages ----------------------------------------------------------------------


def test_pages_refuse_people_without_the_role(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    place = make_facility(ctx)
    _staff_login(client, ctx, clock, Role.SCHEDULER, place)
    nav = client.get("/staff/calendar").text
    assert 'href="/staff/templates"' in nav and 'href="/staff/blocks"' in nav
    assert 'href="/staff/requests"' not in nav
    assert client.get("/staff/requests").status_code == 403
    client.cookies.clear()
    _staff_login(client, ctx, clock, Role.VETTING_CLERK, place)
    assert client.get("/staff/requests").status_code == 200
    for path in ("/staff/templates", "/staff/blocks", "/staff/templates/new"):
        assert client.get(path).status_code == 403, path
    client.cookies.clear()
    email, _ = make_visitor(ctx)
    login(client, email)
    for path in ("/staff/calendar", "/staff/requests", "/staff/templates", "/staff/blocks"):
        assert client.get(path).status_code == 403, path
    assert 'href="/staff/calendar"' not in client.get("/").text


def test_every_staff_form_needs_its_csrf_token(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    place = make_facility(ctx)
    group_id, _ = make_schedule(ctx, place, weekdays=(0,))
    _, visit_id = _booked(ctx, place)
    email, secret = make_staff(ctx, Role.FACILITY_ADMIN, facility_id=place.facility_id)
    assert secret
    login(client, email, totp=totp_now(secret, clock()))
    with ctx.db.read() as s:
        template_id = s.execute(sa.select(SessionTemplate.id)).scalar_one()
    facility = str(place.facility_id)
    for path, data in (
        ("/staff/templates/new", _template_form(place, group_id)),
        (f"/staff/templates/{template_id}/edit", _template_form(place, group_id)),
        (f"/staff/templates/{template_id}/delete", {"facility_id": facility}),
        ("/staff/blocks", _block_form(place)),
        ("/staff/blocks/1/lift", {"facility_id": facility}),
        (f"/staff/requests/{visit_id}/decision", {"decision": "approve", "facility_id": facility}),
    ):
        r = client.post(path, data=data, follow_redirects=False)
        assert r.status_code == 403, path
    with ctx.db.read() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(SessionTemplate)).scalar_one() == 1
        assert s.execute(sa.select(sa.func.count()).select_from(BlockedPeriod)).scalar_one() == 0


def test_staff_pages_in_russian(client: TestClient, ctx: AppContext, clock: FrozenClock) -> None:
    place = make_facility(ctx)
    make_schedule(ctx, place, weekdays=(0,))
    _booked(ctx, place)
    _staff_login(client, ctx, clock, Role.FACILITY_ADMIN, place)
    client.cookies.set("ov_lang", "ru")
    for path, english in (
        ("/staff/templates", ("Session templates", "Monday", "Every week", "Edit", "Delete", "Social visit")),
        ("/staff/blocks", ("Blocked periods", "Stop visits", "Reason", "The whole facility", "Lockdown")),
        (
            "/staff/calendar?date=2026-03-04",
            ("Calendar", "Lead visitor", "Previous day", "person", "Approved"),
        ),
        ("/staff/templates/new", ("Day of the week", "Visit length", "Who may book", "Save", "Wednesday")),
        ("/staff/requests", ("Requests to decide", "No requests are waiting")),
    ):
        page = client.get(path)
        assert page.status_code == 200, path
        assert '<html lang="ru">' in page.text
        for word in english:
            assert word not in page.text, (path, word)
