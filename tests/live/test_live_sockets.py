"""The signalling sockets without media (Starlette's test client): who is refused and how (an `error` with
a code in the socket's language, then the close code), garbage and out-of-order messages answered while
the socket stays open, the monitor's socket and its scope, and the REST routes of live visits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from openvisit.domain.enums import Role, VisitKind, VisitStatus
from openvisit.services import auth
from openvisit.services.context import AppContext, RequestMeta
from openvisit.web.app import create_app
from tests.conftest import FrozenClock
from tests.factories import PASSWORD, make_resident, make_visitor, principal_of
from tests.live.support import (
    Scene,
    at_link_center,
    audit_actions,
    build,
    event_kinds,
    load,
    resident_principal,
    staff,
    token_for,
    visit,
)

Socket = Any  # starlette.testclient.WebSocketTestSession
SDP = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
"""Shaped like an offer; never reaches an engine in these tests."""


@pytest.fixture
def scene(client: TestClient, ctx: AppContext) -> Scene:
    # `client` first: the app (and its start-up recovery) runs before the scene is built.
    return build(ctx, language="ru")


def refused(ws: Socket) -> tuple[dict[str, Any], int]:
    """The one error a refused socket gets, and the code it is closed with."""
    error = ws.receive_json()
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    return error, closed.value.code


def test_an_anonymous_socket_is_refused(
    client: TestClient, ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    visit_id = visit(ctx, scene, starts_at=clock.now)
    with client.websocket_connect(f"/ws/visits/{visit_id}") as ws:
        error, code = refused(ws)
    assert (error["type"], error["code"], code) == ("error", "auth.required", 4403)
    with client.websocket_connect(f"/ws/visits/{visit_id}?token=forged") as ws:
        error, code = refused(ws)
    assert (error["code"], code) == ("auth.required", 4403)


def test_strangers_and_other_stations_are_refused_and_audited(
    client: TestClient, ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    visit_id = visit(ctx, scene, starts_at=clock.now)
    email, _ = make_visitor(ctx)
    with client.websocket_connect(
        f"/ws/visits/{visit_id}?token={token_for(ctx, principal_of(ctx, email))}"
    ) as ws:
        error, code = refused(ws)
    assert (error["code"], code) == ("visit.not_found", 4403)
    other_id, _ = make_resident(ctx, scene.place)
    station = token_for(ctx, resident_principal(ctx, other_id, scene.place.station_id))
    with client.websocket_connect(f"/ws/visits/{visit_id}?token={station}") as ws:
        error, code = refused(ws)
    assert (error["code"], code) == ("visit.not_found", 4403)
    assert audit_actions(ctx, "visit", visit_id) == ["visit.join_refused", "visit.join_refused"]
    assert load(ctx, visit_id).status is VisitStatus.APPROVED


def test_a_join_outside_the_window_is_refused_in_the_sockets_language(
    client: TestClient, ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    visit_id = visit(ctx, scene, starts_at=clock.now + timedelta(hours=1))
    with client.websocket_connect(f"/ws/visits/{visit_id}?token={token_for(ctx, scene.visitor)}") as ws:
        error, code = refused(ws)
    assert (error["code"], code) == ("live.too_early", 4409)
    assert error["message"] == "Подключаться ещё рано. Подключиться можно за 10 мин. до начала."
    over = visit(ctx, scene, starts_at=clock.now - timedelta(hours=1))
    with client.websocket_connect(
        f"/ws/visits/{over}?token={token_for(ctx, scene.resident)}", headers={"Accept-Language": "en"}
    ) as ws:
        error, code = refused(ws)
    assert (error["code"], error["message"], code) == ("live.over", "Это свидание закончилось.", 4409)


def test_garbage_and_messages_out_of_order_are_answered_and_the_socket_stays(
    client: TestClient, ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    visit_id = visit(ctx, scene, starts_at=clock.now + timedelta(minutes=5))
    with client.websocket_connect(
        f"/ws/visits/{visit_id}?token={token_for(ctx, scene.resident)}", headers={"Accept-Language": "en"}
    ) as ws:
        for raw, code in (
            ("garbage", "signal.malformed"),
            ('{"type": "dance"}', "signal.unknown_type"),
            (json.dumps({"type": "offer", "sdp": SDP}), "signal.out_of_order"),
            ('{"type": "leave"}', "signal.out_of_order"),
            ('{"type": "hello"}', "live.rules_not_accepted"),
            ('{"type": "offer"}', "signal.malformed"),
        ):
            ws.send_text(raw)
            answer = ws.receive_json()
            assert (answer["type"], answer["code"]) == ("error", code), raw
            assert answer["message"]
        ws.send_bytes(b"\x00binary")
        assert ws.receive_json()["code"] == "signal.malformed"
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}
    # Nothing happened to the visit.
    assert load(ctx, visit_id).status is VisitStatus.APPROVED
    assert event_kinds(ctx, visit_id) == []


def test_a_session_cookie_counts_only_from_this_site(
    client: TestClient, ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    visit_id = visit(ctx, scene, starts_at=clock.now + timedelta(hours=1))
    login = auth.login(ctx, scene.visitor.label, PASSWORD, RequestMeta())
    cookie = {"Cookie": f"ov_session={login.token}"}
    with client.websocket_connect(
        f"/ws/visits/{visit_id}", headers={**cookie, "Origin": "https://evil.example"}
    ) as ws:
        error, code = refused(ws)
    assert (error["code"], code) == ("auth.required", 4403)
    with client.websocket_connect(
        f"/ws/visits/{visit_id}", headers={**cookie, "Origin": "http://testserver"}
    ) as ws:
        error, code = refused(ws)
    assert (error["code"], code) == ("live.too_early", 4409)


@pytest.fixture
def no_video(ctx: AppContext) -> Iterator[TestClient]:
    app = create_app(ctx.settings.model_copy(update={"media_engine": "none"}), ctx=ctx)
    with TestClient(app, base_url="http://testserver") as test_client:
        yield test_client


def test_a_server_without_video_says_so(no_video: TestClient, ctx: AppContext, clock: FrozenClock) -> None:
    scene = build(ctx)
    visit_id = visit(ctx, scene, starts_at=clock.now)
    with no_video.websocket_connect(f"/ws/visits/{visit_id}?token={token_for(ctx, scene.visitor)}") as ws:
        error, code = refused(ws)
    assert (error["code"], code) == ("media.unavailable", 4409)


# --- monitors -------------------------------------------------------------------------------------------


def test_the_monitor_socket_is_for_the_facilitys_officers(
    client: TestClient, ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    running = visit(ctx, scene, starts_at=clock.now - timedelta(minutes=5), status=VisitStatus.IN_PROGRESS)
    with client.websocket_connect(f"/ws/monitor?token={token_for(ctx, scene.officer)}") as ws:
        error, code = refused(ws)
    assert (error["code"], code) == ("request.invalid", 4403)
    elsewhere = build(ctx)
    for outsider in (elsewhere.officer, scene.investigator, scene.visitor, scene.resident):
        url = f"/ws/monitor?facility_id={scene.place.facility_id}&token={token_for(ctx, outsider)}"
        with client.websocket_connect(url) as ws:
            error, code = refused(ws)
        assert (error["code"], code) == ("facility.not_found", 4403)
    url = f"/ws/monitor?facility_id={scene.place.facility_id}&token={token_for(ctx, scene.officer)}"
    with client.websocket_connect(url) as ws:
        wall = ws.receive_json()
        assert wall["type"] == "visits"
        assert [(v["id"], v["status"], v["sides"]) for v in wall["visits"]] == [(running, "in_progress", [])]
        # Nobody has joined since the server started: there is no media to watch yet.
        ws.send_json({"type": "watch", "visit_id": running, "sdp": SDP})
        error = ws.receive_json()
        assert (error["code"], error["visit_id"]) == ("media.room_not_open", running)


def test_watching_a_legal_visit_is_refused_and_audited_and_the_wall_goes_on(
    client: TestClient, ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    legal = visit(
        ctx,
        scene,
        starts_at=clock.now - timedelta(minutes=5),
        status=VisitStatus.IN_PROGRESS,
        kind=VisitKind.LEGAL,
    )
    url = f"/ws/monitor?facility_id={scene.place.facility_id}&token={token_for(ctx, scene.officer)}"
    with client.websocket_connect(url, headers={"Accept-Language": "en"}) as ws:
        assert ws.receive_json()["visits"][0]["kind"] == "legal"
        ws.send_json({"type": "watch", "visit_id": legal, "sdp": SDP})
        answer = ws.receive_json()
        assert (answer["type"], answer["code"], answer["visit_id"]) == ("error", "media.privileged", legal)
        assert answer["message"] == "This is a privileged legal visit: nobody may watch or record it."
        ws.send_text('{"type": "watch"}')
        assert ws.receive_json()["code"] == "signal.malformed"
        ws.send_json({"type": "hello", "rules_accepted": True})
        assert ws.receive_json()["code"] == "signal.unknown_type"
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}
    assert audit_actions(ctx, "visit", legal) == ["visit.watch_refused"]
    assert load(ctx, legal).status is VisitStatus.IN_PROGRESS


def test_an_officer_terminates_from_the_wall_and_the_wall_is_told(
    client: TestClient, ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    running = visit(ctx, scene, starts_at=clock.now - timedelta(minutes=5), status=VisitStatus.IN_PROGRESS)
    url = f"/ws/monitor?facility_id={scene.place.facility_id}&token={token_for(ctx, scene.officer)}"
    with client.websocket_connect(url) as ws:
        ws.receive_json()
        ws.send_json({"type": "terminate", "visit_id": running, "reason": "rude"})
        assert ws.receive_json()["code"] == "live.invalid_reason"
        ws.send_json({"type": "warn", "visit_id": running, "text": "   "})
        assert ws.receive_json()["code"] == "live.invalid_warning"
        ws.send_json(
            {"type": "terminate", "visit_id": running, "reason": "unapproved_visitor", "note": "a man"}
        )
        assert ws.receive_json() == {
            "type": "ended",
            "visit_id": running,
            "outcome": "terminated",
            "reason": "unapproved_visitor",
        }
        assert ws.receive_json() == {"type": "visits", "visits": []}
        ws.send_json({"type": "warn", "visit_id": running, "text": "too late"})
        assert ws.receive_json()["code"] == "live.not_in_progress"
    row = load(ctx, running)
    assert (row.status, row.reason, row.reason_note) == (
        VisitStatus.TERMINATED,
        "unapproved_visitor",
        "a man",
    )


# --- REST ---------------------------------------------------------------------------------------------


def test_rest_check_in_warn_pause_terminate_and_the_wall(
    client: TestClient, ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    soon = visit(ctx, scene, starts_at=clock.now + timedelta(minutes=10))
    center, _ = at_link_center(ctx, soon)
    operator = {
        "Authorization": f"Bearer {token_for(ctx, staff(ctx, Role.LINK_OPERATOR, link_center_id=center))}"
    }
    officer = {"Authorization": f"Bearer {token_for(ctx, scene.officer)}"}
    attested = {"id_checked": True}
    assert client.post(f"/api/v1/visits/{soon}/check-in", headers=officer, json=attested).status_code == 404
    unchecked = client.post(f"/api/v1/visits/{soon}/check-in", headers=operator, json={"id_checked": False})
    assert unchecked.status_code == 400 and unchecked.json()["error"]["code"] == "live.id_not_checked"
    checked = client.post(f"/api/v1/visits/{soon}/check-in", headers=operator, json=attested)
    assert checked.json() == {"visit_id": soon, "checked_in": True}

    running = visit(ctx, scene, starts_at=clock.now - timedelta(minutes=20), status=VisitStatus.IN_PROGRESS)
    wall = client.get(f"/api/v1/facilities/{scene.place.facility_id}/live", headers=officer)
    assert [v["id"] for v in wall.json()] == [running, soon]
    assert (
        client.get(f"/api/v1/facilities/{scene.place.facility_id}/live", headers=operator).status_code == 404
    )
    warned = client.post(f"/api/v1/visits/{running}/warn", headers=officer, json={"text": "Stay in view"})
    assert warned.status_code == 200, warned.text
    assert warned.json()["text"] == "Stay in view"
    paused = client.post(
        f"/api/v1/visits/{running}/pause", headers=officer, json={"side": "visitor", "paused": True}
    )
    assert paused.status_code == 204
    assert (
        client.post(
            f"/api/v1/visits/{running}/pause", headers=officer, json={"side": "monitor", "paused": True}
        ).status_code
        == 422
    )
    bad = client.post(f"/api/v1/visits/{running}/terminate", headers=officer, json={"reason": "boredom"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "live.invalid_reason")
    ended = client.post(
        f"/api/v1/visits/{running}/terminate", headers=officer, json={"reason": "technical", "note": "frozen"}
    )
    assert ended.status_code == 200, ended.text
    body = ended.json()
    assert (body["status"], body["outcome"], body["reason"]) == ("failed", "failed", "technical")
    again = client.post(f"/api/v1/visits/{running}/terminate", headers=officer, json={"reason": "conduct"})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "live.not_in_progress")
    failed = client.post(f"/api/v1/visits/{running}/station-failure", headers=officer, json={})
    assert failed.status_code == 409
    assert audit_actions(ctx, "visit", running) == ["visit.warned", "visit.video_paused", "visit.failed"]
