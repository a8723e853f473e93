"""The visitor's pages, driven as a browser would: free times in both zones, hold, confirm, reschedule,
cancel (the allowance comes back), refusals, the station's messages, CSRF, and Russian."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import sqlalchemy as sa
from fastapi.testclient import TestClient

from openvisit.db.models import Facility, ResidentAlert, Station, Visit, VisitParticipant
from openvisit.domain.enums import (
    ConnectionStatus,
    ParticipantRole,
    StationKind,
    VisitStatus,
)
from openvisit.services import delivery
from openvisit.services.context import AppContext
from tests.conftest import FrozenClock
from tests.factories import (
    Place,
    connect,
    make_dependent,
    make_facility,
    make_link_center,
    make_resident,
    make_schedule,
    make_visit,
    make_visitor,
)
from tests.webutil import csrf_from, login, post_form

# The clock stands at Monday 2026-03-02 09:00 UTC (16:00 in Krasnoyarsk). The public may book from
# 24 h ahead: Tuesday 16:00 local is the first time; from Wednesday every session of 09:00-17:00 local
# (30-minute visits every 35 minutes) is open.
WED_09 = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)  # 09:00 Krasnoyarsk, 05:00 Moscow
WED_09_35 = datetime(2026, 3, 4, 2, 35, tzinfo=UTC)
THU_09 = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)


def _family(ctx: AppContext, *, language: str = "en") -> tuple[Place, int, str, int]:
    """A Krasnoyarsk facility with sessions every day, a resident, and an approved Moscow visitor."""
    place = make_facility(ctx)
    make_schedule(ctx, place)
    resident_id, _ = make_resident(ctx, place)
    email, visitor_id = make_visitor(ctx, language=language, tz="Europe/Moscow")
    connect(ctx, resident_id, visitor_id, ConnectionStatus.APPROVED)
    return place, resident_id, email, visitor_id


def _visit(ctx: AppContext, visit_id: int) -> Visit:
    with ctx.db.read() as s:
        visit = s.get(Visit, visit_id)
        assert visit is not None
        return visit


def _book_page(client: TestClient, resident_id: int, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"resident_id": str(resident_id), **params}.items())
    page = client.get(f"/visits/book?{query}")
    assert page.status_code == 200, page.text
    return page.text


def _hold(client: TestClient, resident_id: int, starts_at: datetime, **extra: str | list[str]) -> int:
    page = client.get(f"/visits/book?resident_id={resident_id}")
    data: dict[str, str | list[str]] = {
        "csrf_token": csrf_from(page),
        "resident_id": str(resident_id),
        "starts_at": starts_at.isoformat(),
        "kind": "social",
        "mode": "home",
        **extra,
    }
    r = client.post("/visits/hold", data=data, follow_redirects=False)
    assert r.status_code == 303, r.text
    match = re.fullmatch(r"/visits/(\d+)/confirm", r.headers["location"])
    assert match, r.headers["location"]
    return int(match.group(1))


def _confirm(client: TestClient, visit_id: int) -> str:
    page = client.get(f"/visits/{visit_id}/confirm")
    assert page.status_code == 200
    r = client.post(
        f"/visits/{visit_id}/confirm", data={"csrf_token": csrf_from(page)}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    return str(r.headers["location"])


def test_a_visitor_books_moves_and_cancels_a_visit(client: TestClient, ctx: AppContext) -> None:
    _place, resident_id, email, _visitor_id = _family(ctx)
    login(client, email)

    page = _book_page(client, resident_id)
    # Each time in the facility's time and, below it, the Moscow visitor's own.
    assert "Times are in the facility&#39;s time (Krasnoyarsk, UTC+7); yours (Moscow, UTC+3)" in page
    assert f'value="{WED_09.isoformat()}"' in page
    assert "Mar 4, 2026 09:00 (Krasnoyarsk, UTC+7) · Mar 4, 2026 05:00 (Moscow, UTC+3)" in page
    assert re.search(r'<span class="time-here">09:00</span>\s*<span class="time-yours">05:00</span>', page)
    assert "Tuesday, March 3, 2026" in page and "Wednesday, March 4, 2026" in page
    # Tuesday opens at the minimum notice: 16:00 local is its only time.
    tuesday = page.split("Tuesday, March 3, 2026")[1].split("Wednesday, March 4, 2026")[0]
    assert tuesday.count('class="time"') == 1 and "16:00" in tuesday

    visit_id = _hold(client, resident_id, WED_09)
    assert _visit(ctx, visit_id).status is VisitStatus.HELD
    confirm = client.get(f"/visits/{visit_id}/confirm").text
    assert "This visit is monitored and recorded." in confirm
    # The hold runs 10 minutes from now (09:00 UTC), shown in the visitor's own time.
    assert "until Mar 2, 2026 12:10 (Moscow, UTC+3)" in confirm
    assert _confirm(client, visit_id) == "/visits?done=booked"
    assert _visit(ctx, visit_id).status is VisitStatus.APPROVED

    mine = client.get("/visits?done=booked").text
    assert "Your visit is booked." in mine
    assert "Mar 4, 2026 09:00 (Krasnoyarsk, UTC+7) · Mar 4, 2026 05:00 (Moscow, UTC+3)" in mine
    assert "Approved" in mine and f'action="/visits/{visit_id}/cancel"' in mine

    # Reschedule: the old visit is cancelled as moved, the new one booked with the same people.
    move = client.get(f"/visits/{visit_id}/reschedule")
    assert move.status_code == 200 and f'value="{THU_09.isoformat()}"' in move.text
    r = client.post(
        f"/visits/{visit_id}/reschedule",
        data={"csrf_token": csrf_from(move), "starts_at": THU_09.isoformat()},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/visits?done=moved"
    old = _visit(ctx, visit_id)
    assert old.status is VisitStatus.CANCELLED and old.reason == "rescheduled"
    with ctx.db.read() as s:
        new = s.execute(sa.select(Visit).where(Visit.replaces_visit_id == visit_id)).scalar_one()
    assert new.status is VisitStatus.APPROVED and new.starts_at == THU_09
    mine = client.get("/visits").text
    assert "Mar 5, 2026 09:00 (Krasnoyarsk, UTC+7)" in mine and "Moved to another time" in mine

    # With an allowance of one visit a week, this week is now used up and says so...
    with ctx.db.write() as s:
        s.execute(sa.update(Facility).values(allowance_count=1))
    page = _book_page(client, resident_id)
    assert "The visits allowed for this week are used up." in page
    assert f'value="{WED_09.isoformat()}"' not in page
    # ...until the visit is cancelled: the allowance comes back and the times are offered again.
    listing = client.get("/visits")
    r = client.post(
        f"/visits/{new.id}/cancel", data={"csrf_token": csrf_from(listing)}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/visits?done=cancelled"
    cancelled = _visit(ctx, new.id)
    assert cancelled.status is VisitStatus.CANCELLED and cancelled.reason == "visitor_cancelled"
    page = _book_page(client, resident_id)
    assert "used up" not in page
    assert f'value="{WED_09.isoformat()}"' in page and f'value="{THU_09.isoformat()}"' in page
    assert "Cancelled by the visitor" in client.get("/visits").text


def test_children_chosen_before_the_hold_come_along(client: TestClient, ctx: AppContext) -> None:
    _place, resident_id, email, visitor_id = _family(ctx)
    child = make_dependent(ctx, visitor_id, resident_id)
    login(client, email)
    page = _book_page(client, resident_id)
    assert "Who comes with you" in page and f'name="dependent_ids" value="{child}"' in page
    visit_id = _hold(client, resident_id, WED_09, dependent_ids=[str(child)])
    confirm = client.get(f"/visits/{visit_id}/confirm").text
    assert "Дарья Иванова" in confirm and "Анна Иванова" in confirm
    _confirm(client, visit_id)
    with ctx.db.read() as s:
        roles = s.execute(
            sa.select(VisitParticipant.role).where(VisitParticipant.visit_id == visit_id)
        ).scalars()
        assert sorted(roles) == [ParticipantRole.DEPENDENT, ParticipantRole.LEAD]


def test_a_request_waits_for_staff_and_says_so(client: TestClient, ctx: AppContext) -> None:
    _place, resident_id, email, _ = _family(ctx)
    with ctx.db.write() as s:
        s.add(ResidentAlert(resident_id=resident_id, note="check visitors"))
    login(client, email)
    visit_id = _hold(client, resident_id, WED_09)
    assert _confirm(client, visit_id) == "/visits?done=requested"
    page = client.get("/visits?done=requested").text
    assert "Your visit is requested." in page and "Awaiting approval" in page


def test_a_released_hold_gives_the_time_back(client: TestClient, ctx: AppContext) -> None:
    _place, resident_id, email, _ = _family(ctx)
    login(client, email)
    visit_id = _hold(client, resident_id, WED_09)
    page = client.get(f"/visits/{visit_id}/confirm")
    r = client.post(
        f"/visits/{visit_id}/release", data={"csrf_token": csrf_from(page)}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"].startswith(
        f"/visits/book?resident_id={resident_id}"
    )
    assert _visit(ctx, visit_id).status is VisitStatus.CANCELLED
    assert f'value="{WED_09.isoformat()}"' in _book_page(client, resident_id)


def test_an_expired_hold_cannot_be_confirmed(client: TestClient, ctx: AppContext, clock: FrozenClock) -> None:
    _place, resident_id, email, _ = _family(ctx)
    login(client, email)
    visit_id = _hold(client, resident_id, WED_09)
    page = client.get(f"/visits/{visit_id}/confirm")
    clock.advance(minutes=11)
    r = client.post(
        f"/visits/{visit_id}/confirm", data={"csrf_token": csrf_from(page)}, follow_redirects=False
    )
    assert r.status_code == 409
    assert "The time you held has expired. Please choose a time again." in r.text
    assert "Choose a time" in client.get(f"/visits/{visit_id}/confirm").text


def test_a_time_taken_meanwhile_is_refused_beside_the_times(client: TestClient, ctx: AppContext) -> None:
    _place, resident_id, email, _ = _family(ctx)
    login(client, email)
    visit_id = _hold(client, resident_id, WED_09)
    _confirm(client, visit_id)
    page = client.get(f"/visits/book?resident_id={resident_id}")
    r = client.post(
        "/visits/hold",
        data={
            "csrf_token": csrf_from(page),
            "resident_id": str(resident_id),
            "starts_at": WED_09.isoformat(),
            "mode": "home",
        },
    )
    assert r.status_code == 409
    assert 'role="alert"' in r.text and "already has a visit at this time" in r.text
    assert f'value="{WED_09_35.isoformat()}"' in r.text, "the fresh times are offered again"


def test_a_visitor_without_approval_is_told_clearly(client: TestClient, ctx: AppContext) -> None:
    place = make_facility(ctx)
    make_schedule(ctx, place)
    resident_id, _ = make_resident(ctx, place)
    email, visitor_id = make_visitor(ctx)
    connect(ctx, resident_id, visitor_id, ConnectionStatus.REQUESTED)
    login(client, email)
    page = client.get("/visits/book")
    assert page.status_code == 200
    assert "You can book once staff have approved you to visit someone." in page.text
    refused = client.get(f"/visits/book?resident_id={resident_id}")
    assert refused.status_code == 403
    assert "Everyone in the visit must be approved to visit this person." in refused.text
    r = client.post(
        "/visits/hold",
        data={
            "csrf_token": csrf_from(page),
            "resident_id": str(resident_id),
            "starts_at": WED_09.isoformat(),
            "mode": "home",
        },
    )
    assert r.status_code == 403
    with ctx.db.read() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(Visit)).scalar_one() == 0
    # Someone with no link at all is told the person does not exist, as for any resident not theirs.
    stranger, _ = make_visitor(ctx)
    client.cookies.clear()
    login(client, stranger)
    assert client.get(f"/visits/book?resident_id={resident_id}").status_code == 404


def test_a_link_center_must_be_chosen(client: TestClient, ctx: AppContext) -> None:
    _place, resident_id, email, _ = _family(ctx)
    center = make_link_center(ctx)
    with ctx.db.write() as s:
        s.add(Station(code=f"B{center}", name="Booth", kind=StationKind.LINK_BOOTH, link_center_id=center))
    login(client, email)
    missing = client.get(f"/visits/book?resident_id={resident_id}&mode=link_center")
    assert missing.status_code == 400 and "Please choose a link center." in missing.text
    assert 'aria-invalid="true" aria-describedby="form-error"' in missing.text
    page = _book_page(client, resident_id, mode="link_center", link_center_id=str(center))
    assert f'name="link_center_id" value="{center}"' in page and 'class="time"' in page


def test_other_peoples_visits_are_not_found(client: TestClient, ctx: AppContext) -> None:
    _place, resident_id, email, _ = _family(ctx)
    login(client, email)
    visit_id = _hold(client, resident_id, WED_09)
    _confirm(client, visit_id)
    other, _ = make_visitor(ctx)
    client.cookies.clear()
    login(client, other)
    for path in (f"/visits/{visit_id}/confirm", f"/visits/{visit_id}/reschedule"):
        assert client.get(path).status_code == 404
    page = client.get("/visits")
    assert "You have no upcoming visits." in page.text
    r = client.post(f"/visits/{visit_id}/cancel", data={"csrf_token": csrf_from(page)})
    assert r.status_code == 404
    assert _visit(ctx, visit_id).status is VisitStatus.APPROVED


def test_every_visitor_form_needs_its_csrf_token(client: TestClient, ctx: AppContext) -> None:
    _place, resident_id, email, _ = _family(ctx)
    login(client, email)
    visit_id = _hold(client, resident_id, WED_09)
    for path, data in (
        ("/visits/hold", {"resident_id": str(resident_id), "starts_at": WED_09_35.isoformat()}),
        (f"/visits/{visit_id}/confirm", {}),
        (f"/visits/{visit_id}/release", {}),
        (f"/visits/{visit_id}/cancel", {}),
        (f"/visits/{visit_id}/reschedule", {"starts_at": WED_09_35.isoformat()}),
    ):
        r = client.post(path, data=data, follow_redirects=False)
        assert r.status_code == 403, path
        assert "This form has expired" in r.text
    assert _visit(ctx, visit_id).status is VisitStatus.HELD


def test_pages_are_for_logged_in_visitors(client: TestClient, ctx: AppContext) -> None:
    r = client.get("/visits", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


def test_the_booking_pages_in_russian(client: TestClient, ctx: AppContext) -> None:
    _place, resident_id, email, _ = _family(ctx, language="ru")
    login(client, email)
    page = _book_page(client, resident_id)
    assert '<html lang="ru">' in page
    assert "Записаться на свидание" in page and "Среда, 4 марта 2026\u202fг." in page
    assert "(Красноярск, UTC+7)" in page and "(Москва, UTC+3)" in page
    for english in (
        "Book a visit",
        "Free times",
        "Whom and how",
        "From home",
        "Show free times",
        "Times are",
    ):
        assert english not in page, english
    visit_id = _hold(client, resident_id, WED_09)
    confirm = client.get(f"/visits/{visit_id}/confirm").text
    assert "Это свидание наблюдается и записывается." in confirm
    for english in ("Confirm", "monitored", "When", "Who takes part", "held for you"):
        assert english not in confirm, english
    _confirm(client, visit_id)
    mine = client.get("/visits").text
    for english in ("My visits", "Upcoming", "Reschedule", "Cancel visit", "Approved", "Social visit"):
        assert english not in mine, english


def test_station_messages_read_as_sentences(client: TestClient, ctx: AppContext) -> None:
    place, resident_id, email, _ = _family(ctx)
    login(client, email)
    visit_id = _hold(client, resident_id, WED_09)
    _confirm(client, visit_id)
    page = client.get("/visits")
    client.post(f"/visits/{visit_id}/cancel", data={"csrf_token": csrf_from(page)})
    client.cookies.clear()
    post_form(
        client,
        "/station/enrol",
        {"station_code": place.station_code, "station_key": place.station_key},
        page="/station/login",
    )
    with ctx.db.read() as s:
        number = s.execute(
            sa.text("SELECT number FROM resident WHERE id = :id"), {"id": resident_id}
        ).scalar_one()
    ok = post_form(client, "/station/login", {"number": number, "pin": "2468"}, page="/station/login")
    assert ok.status_code == 303
    assert "Свидание" not in client.get("/station").text, "nothing is shown before it is delivered"
    delivery.deliver_due(ctx)
    station = client.get("/station")
    # Residents read Russian by default.
    assert (
        "Свидание отменено: 4 мар. 2026\u202fг. 09:00 (Красноярск, UTC+7). Причина: Отменено посетителем"
        in station.text
    )
    assert "Свидание назначено: 4 мар. 2026\u202fг. 09:00 (Красноярск, UTC+7)" in station.text
    assert "visit_cancelled" not in station.text
    client.post("/station/messages/read", data={"csrf_token": csrf_from(station)})
    assert "Отметить всё как прочитанное" not in client.get("/station").text


def test_a_visit_the_system_cut_short_is_booked_again_with_priority(
    client: TestClient, ctx: AppContext
) -> None:
    place, resident_id, email, _visitor_id = _family(ctx)
    failed = make_visit(
        ctx, place, resident_id, _visitor_id, starts_at=datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
    )
    with ctx.db.write() as s:
        s.execute(
            sa.update(Visit)
            .where(Visit.id == failed)
            .values(
                status=VisitStatus.FAILED,
                reason="technical",
                outcome="failed",
                priority_rebooking=True,
                counts_toward_allowance=False,
            )
        )
    login(client, email)
    tue_09 = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)  # 17 hours ahead: too soon for the public window
    assert f'value="{tue_09.isoformat()}"' not in _book_page(client, resident_id)

    listing = client.get("/visits").text
    link = re.search(r'href="(/visits/book\?[^"]*rebook=\d+[^"]*)"', listing)
    assert link, listing
    assert "Book again with priority" in listing
    page = client.get(link.group(1).replace("&amp;", "&"))
    assert page.status_code == 200
    assert "Priority re-booking" in page.text
    assert f'value="{tue_09.isoformat()}"' in page.text

    held = _hold(client, resident_id, tue_09, rebook=str(failed))
    assert _confirm(client, held) == "/visits?done=booked"
    booked = _visit(ctx, held)
    assert (booked.status, booked.replaces_visit_id) == (VisitStatus.APPROVED, failed)
    assert "Book again with priority" not in client.get("/visits").text
