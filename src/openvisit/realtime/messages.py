"""The signalling protocol of docs/signalling.md as typed messages: one pydantic union per direction and
endpoint, discriminated on `type`. Parsing refuses garbage with a stable code; the socket stays open."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from openvisit.domain.errors import N_, Conflict, InvalidInput

MAX_MESSAGE_CHARS = 100_000
"""An SDP with its ICE candidates is a few kilobytes; anything far larger is not a message of ours."""
MAX_SDP_CHARS = 60_000

SideName = Literal["visitor", "resident"]


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, str_max_length=MAX_SDP_CHARS)


# --- participants: client → server ---------------------------------------------------------------


class Hello(_Message):
    type: Literal["hello"]
    rules_accepted: bool = False


def _looks_like_sdp(sdp: str) -> str:
    """An offer is an SDP with at least one audio or video section; anything else is refused before it
    reaches the media engine, so that garbage cannot stand in for a side's working connection."""
    if not sdp.startswith("v=0") or not any(
        line.startswith(("m=audio ", "m=video ")) for line in sdp.splitlines()
    ):
        raise ValueError("not an SDP offer with media")
    return sdp


SdpText = Annotated[str, Field(min_length=1, max_length=MAX_SDP_CHARS), AfterValidator(_looks_like_sdp)]


class Offer(_Message):
    type: Literal["offer"]
    sdp: SdpText


class Leave(_Message):
    type: Literal["leave"]


class Ping(_Message):
    type: Literal["ping"]


ParticipantMessage = Annotated[Hello | Offer | Leave | Ping, Field(discriminator="type")]


# --- monitors: client → server -------------------------------------------------------------------

_VisitId = Annotated[int, Field(ge=1, le=2**31 - 1)]


class Watch(_Message):
    type: Literal["watch"]
    visit_id: _VisitId
    sdp: SdpText


class Unwatch(_Message):
    type: Literal["unwatch"]
    visit_id: _VisitId


class Warn(_Message):
    type: Literal["warn"]
    visit_id: _VisitId
    text: Annotated[str, Field(max_length=2000)]


class Pause(_Message):
    type: Literal["pause"]
    visit_id: _VisitId
    side: SideName
    paused: bool


class Terminate(_Message):
    type: Literal["terminate"]
    visit_id: _VisitId
    reason: Annotated[str, Field(max_length=64)]
    note: Annotated[str, Field(max_length=2000)] = ""


MonitorMessage = Annotated[Watch | Unwatch | Warn | Pause | Terminate | Ping, Field(discriminator="type")]

_PARTICIPANT: TypeAdapter[Hello | Offer | Leave | Ping] = TypeAdapter(ParticipantMessage)
_MONITOR: TypeAdapter[Watch | Unwatch | Warn | Pause | Terminate | Ping] = TypeAdapter(MonitorMessage)
PARTICIPANT_TYPES = frozenset({"hello", "offer", "leave", "ping"})
MONITOR_TYPES = frozenset({"watch", "unwatch", "warn", "pause", "terminate", "ping"})


class SignalError(InvalidInput):
    """A message that is not one of ours; answered with `error` and otherwise ignored."""

    default_code = "signal.malformed"
    default_message = N_("This message could not be understood.")


class OutOfOrder(Conflict):
    """A message that is ours but not allowed now."""

    default_code = "signal.out_of_order"
    default_message = N_("This message is not expected now.")


def _decode(text: str | bytes, known: frozenset[str]) -> dict[str, Any]:
    if isinstance(text, bytes) or len(text) > MAX_MESSAGE_CHARS:
        raise SignalError()
    try:
        data = json.loads(text)
    except ValueError:
        raise SignalError() from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise SignalError()
    if data["type"] not in known:
        raise SignalError("signal.unknown_type", N_("This kind of message is not known."))
    return data


def parse_participant(text: str | bytes) -> Hello | Offer | Leave | Ping:
    """One message of a visit's side, or SignalError."""
    data = _decode(text, PARTICIPANT_TYPES)
    try:
        return _PARTICIPANT.validate_python(data)
    except ValidationError:
        raise SignalError() from None


def parse_monitor(text: str | bytes) -> Watch | Unwatch | Warn | Pause | Terminate | Ping:
    """One message of a monitoring officer, or SignalError."""
    data = _decode(text, MONITOR_TYPES)
    try:
        return _MONITOR.validate_python(data)
    except ValidationError:
        raise SignalError() from None


# --- server → client -----------------------------------------------------------------------------


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def welcome(
    *,
    visit_id: int,
    side: str,
    kind: str,
    notice: str,
    starts_at: datetime,
    ends_at: datetime,
    server_time: datetime,
    peer_connected: bool,
) -> dict[str, Any]:
    return {
        "type": "welcome",
        "visit_id": visit_id,
        "side": side,
        "kind": kind,
        "notice": notice,
        "starts_at": _iso(starts_at),
        "ends_at": _iso(ends_at),
        "server_time": _iso(server_time),
        "peer_connected": peer_connected,
    }


def answer(sdp: str, *, visit_id: int | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "answer", "sdp": sdp}
    if visit_id is not None:
        message["visit_id"] = visit_id
    return message


def peer(side: str, state: Literal["joined", "left"]) -> dict[str, Any]:
    return {"type": "peer", "side": side, "state": state}


def warning(text: str, at: datetime) -> dict[str, Any]:
    return {"type": "warning", "text": text, "at": _iso(at)}


def time_left(minutes: int) -> dict[str, Any]:
    return {"type": "time", "minutes_left": minutes}


def paused(side: str, is_paused: bool) -> dict[str, Any]:
    return {"type": "paused", "side": side, "paused": is_paused}


def ended(outcome: str, reason: str, message: str, *, visit_id: int | None = None) -> dict[str, Any]:
    """To a side: outcome, reason and the translated message; to a monitor: with the visit's id."""
    event: dict[str, Any] = {"type": "ended", "outcome": outcome, "reason": reason}
    if visit_id is None:
        event["message"] = message
    else:
        event["visit_id"] = visit_id
    return event


def replaced() -> dict[str, Any]:
    return {"type": "replaced"}


def error(code: str, message: str, *, visit_id: int | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if visit_id is not None:
        event["visit_id"] = visit_id
    return event


def pong() -> dict[str, Any]:
    return {"type": "pong"}


def visits(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "visits", "visits": items}
