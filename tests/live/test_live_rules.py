"""The pure rules of live visits (domain.live) and the signalling protocol's parsing (realtime.messages)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from openvisit.domain import live as rules
from openvisit.domain.enums import VisitKind, VisitStatus
from openvisit.domain.errors import Conflict, InvalidInput
from openvisit.realtime import messages
from openvisit.realtime.hub import localise

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
END = START + timedelta(minutes=30)


# --- the join window --------------------------------------------------------------------------------


def test_the_window_opens_early_and_closes_at_the_end_without_extension() -> None:
    assert rules.join_window(START, END, 10) == (START - timedelta(minutes=10), END)
    rules.check_join(VisitStatus.APPROVED, START, END, START - timedelta(minutes=10), 10)
    rules.check_join(VisitStatus.IN_PROGRESS, START, END, END - timedelta(microseconds=1), 10)
    with pytest.raises(Conflict) as early:
        rules.check_join(VisitStatus.APPROVED, START, END, START - timedelta(minutes=10, seconds=1), 10)
    assert early.value.code == "live.too_early"
    assert early.value.params == {"minutes": 10}
    with pytest.raises(Conflict) as over:
        rules.check_join(VisitStatus.IN_PROGRESS, START, END, END, 10)
    assert over.value.code == "live.over"


@pytest.mark.parametrize(
    "status",
    [
        VisitStatus.HELD,
        VisitStatus.REQUESTED,
        VisitStatus.CANCELLED,
        VisitStatus.REJECTED,
        VisitStatus.COMPLETED,
        VisitStatus.TERMINATED,
        VisitStatus.FAILED,
    ],
)
def test_only_approved_and_running_visits_may_be_joined(status: VisitStatus) -> None:
    with pytest.raises(Conflict) as refused:
        rules.check_join(status, START, END, START, 10)
    assert refused.value.code == "live.not_joinable"


def test_countdown_marks_ahead_only_soonest_first() -> None:
    assert rules.countdown_marks(END, START) == [
        (5, END - timedelta(minutes=5)),
        (1, END - timedelta(minutes=1)),
    ]
    # Joined with three minutes left: the 5-minute mark is not said late.
    assert rules.countdown_marks(END, END - timedelta(minutes=3)) == [(1, END - timedelta(minutes=1))]
    assert rules.countdown_marks(END, END - timedelta(seconds=30)) == []
    assert rules.minutes_left(END, END - timedelta(seconds=61)) == 2
    assert rules.minutes_left(END, END) == 0


def test_the_notice_follows_the_kind() -> None:
    assert rules.notice_for(VisitKind.SOCIAL) is rules.Notice.MONITORED_RECORDED
    assert rules.notice_for(VisitKind.LEGAL) is rules.Notice.PRIVILEGED


# --- endings ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["third_party", "recording_device", "conduct", "unapproved_visitor"])
def test_terminations_for_the_partys_conduct_suspend_the_visitor(reason: str) -> None:
    ending = rules.termination_ending(rules.check_termination_reason(reason))
    assert ending.status is VisitStatus.TERMINATED
    assert ending.outcome is rules.Outcome.TERMINATED
    assert ending.reason == reason
    assert ending.suspends_visitor
    assert not ending.credits_allowance
    assert not ending.priority_rebooking


def test_a_security_termination_blames_nobody_and_a_technical_one_is_a_failure() -> None:
    security = rules.termination_ending(rules.TerminationReason.SECURITY)
    assert security.status is VisitStatus.TERMINATED
    assert not security.suspends_visitor
    assert not security.credits_allowance
    technical = rules.termination_ending(rules.TerminationReason.TECHNICAL)
    assert technical.status is VisitStatus.FAILED
    assert technical.outcome is rules.Outcome.FAILED
    assert technical.credits_allowance
    assert technical.priority_rebooking
    assert not technical.suspends_visitor


def test_every_termination_reason_has_a_label_and_unknown_ones_are_refused() -> None:
    assert set(rules.TERMINATION_REASONS) == {r.value for r in rules.TerminationReason}
    assert set(rules.FAILURE_REASONS) == {r.value for r in rules.FailureReason}
    for bad in (None, "", "rude", "TECHNICAL"):
        with pytest.raises(InvalidInput) as refused:
            rules.check_termination_reason(bad)
        assert refused.value.code == "live.invalid_reason"


def test_a_station_lost_and_never_back_before_the_end_failed() -> None:
    joined = rules.SideMoment(START, "joined")
    lost = rules.SideMoment(END - timedelta(minutes=10), "lost")
    assert rules.end_at_schedule([joined, lost], END).status is VisitStatus.FAILED
    assert rules.end_at_schedule([joined, lost], END).reason == "station_failure"
    back = rules.SideMoment(END - timedelta(minutes=8), "joined")
    assert rules.end_at_schedule([joined, lost, back], END) == rules.COMPLETED
    # Order is by time, whatever order the moments come in.
    assert rules.end_at_schedule([back, lost, joined], END) == rules.COMPLETED
    left = rules.SideMoment(END - timedelta(minutes=10), "left")
    assert rules.end_at_schedule([joined, left], END) == rules.COMPLETED
    # Lost in the last seconds: the visit was as good as over.
    late = rules.SideMoment(END - timedelta(seconds=30), "lost")
    assert rules.end_at_schedule([joined, late], END) == rules.COMPLETED
    assert rules.end_at_schedule([], END) == rules.COMPLETED


def test_after_a_restart_a_visit_past_its_end_failed_and_one_with_time_left_waits() -> None:
    failed = rules.recovery_ending(END, END + timedelta(seconds=1))
    assert failed is not None
    assert failed.reason == "server_restart"
    assert failed.credits_allowance
    assert rules.recovery_ending(END, END - timedelta(minutes=1)) is None
    assert rules.end_of_recovered(rejoined=True) is None
    nobody = rules.end_of_recovered(rejoined=False)
    assert nobody is not None
    assert nobody.status is VisitStatus.FAILED


def test_warnings_are_one_line_and_bounded() -> None:
    assert rules.check_warning("  Please   keep\nthe camera on you ") == "Please keep the camera on you"
    for bad in ("", "   ", "x" * (rules.WARNING_MAX_CHARS + 1)):
        with pytest.raises(InvalidInput):
            rules.check_warning(bad)


def test_retention_and_purging() -> None:
    until = rules.retain_until(START, 90)
    assert until == START + timedelta(days=90)
    assert not rules.may_purge(until, False, until - timedelta(seconds=1))
    assert rules.may_purge(until, False, until)
    assert not rules.may_purge(until, True, until + timedelta(days=400))


# --- the protocol ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "signal.malformed"),
        ("[1, 2]", "signal.malformed"),
        ('{"sdp": "x"}', "signal.malformed"),
        ('{"type": 7}', "signal.malformed"),
        ('{"type": "dance"}', "signal.unknown_type"),
        ('{"type": "watch", "visit_id": 1, "sdp": "x"}', "signal.unknown_type"),
        ('{"type": "offer"}', "signal.malformed"),
        ('{"type": "offer", "sdp": ""}', "signal.malformed"),
        ('{"type": "offer", "sdp": "v=0\\r\\ns=-\\r\\n"}', "signal.malformed"),
        ('{"type": "offer", "sdp": "m=video 9 UDP/TLS/RTP/SAVPF 96"}', "signal.malformed"),
        ('{"type": "offer", "sdp": ' + json.dumps("v" * 70_000) + "}", "signal.malformed"),
        ("x" * 200_000, "signal.malformed"),
        (b"\x00\x01", "signal.malformed"),
    ],
)
def test_participant_garbage_is_refused_with_a_code(raw: str | bytes, code: str) -> None:
    with pytest.raises(messages.SignalError) as refused:
        messages.parse_participant(raw)
    assert refused.value.code == code


def test_participant_messages_parse_into_their_types() -> None:
    hello = messages.parse_participant('{"type": "hello", "rules_accepted": true}')
    assert isinstance(hello, messages.Hello)
    assert hello.rules_accepted
    offer = messages.parse_participant(
        '{"type": "offer", "sdp": "v=0\\r\\nm=audio 9 UDP/TLS/RTP/SAVPF 111\\r\\n"}'
    )
    assert isinstance(offer, messages.Offer)
    assert offer.sdp.startswith("v=0\r\nm=audio")
    assert isinstance(messages.parse_participant('{"type": "leave"}'), messages.Leave)
    assert isinstance(messages.parse_participant('{"type": "ping"}'), messages.Ping)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ('{"type": "hello"}', "signal.unknown_type"),
        ('{"type": "watch", "visit_id": 0, "sdp": "x"}', "signal.malformed"),
        ('{"type": "watch", "visit_id": "one", "sdp": "x"}', "signal.malformed"),
        ('{"type": "pause", "visit_id": 1, "side": "monitor", "paused": true}', "signal.malformed"),
        ('{"type": "terminate", "visit_id": 1}', "signal.malformed"),
        ('{"type": "warn", "visit_id": 99999999999, "text": "x"}', "signal.malformed"),
    ],
)
def test_monitor_garbage_is_refused_with_a_code(raw: str, code: str) -> None:
    with pytest.raises(messages.SignalError) as refused:
        messages.parse_monitor(raw)
    assert refused.value.code == code


def test_monitor_messages_parse_into_their_types() -> None:
    pause = messages.parse_monitor('{"type": "pause", "visit_id": 4, "side": "resident", "paused": true}')
    assert isinstance(pause, messages.Pause)
    assert (pause.visit_id, pause.side, pause.paused) == (4, "resident", True)
    terminate = messages.parse_monitor('{"type": "terminate", "visit_id": 4, "reason": "conduct"}')
    assert isinstance(terminate, messages.Terminate)
    assert terminate.note == ""


def test_messages_are_translated_for_each_reader() -> None:
    event = {
        **messages.ended("terminated", "conduct", ""),
        "_msgid": "Staff ended the visit. Reason: %(reason)s",
        "_tparams": {"reason": rules.TERMINATION_REASONS["conduct"]},
    }
    english = localise(event, "en")
    assert english == {
        "type": "ended",
        "outcome": "terminated",
        "reason": "conduct",
        "message": "Staff ended the visit. Reason: Conduct",
    }
    assert localise(event, "ru")["message"] == "Сотрудник прекратил свидание. Причина: Поведение"
    assert messages.ended("completed", "completed", "", visit_id=3) == {
        "type": "ended",
        "outcome": "completed",
        "reason": "completed",
        "visit_id": 3,
    }
