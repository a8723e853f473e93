"""The signalling sockets of docs/signalling.md: `/ws/visits/{visit_id}` for a visit's two sides and
`/ws/monitor?facility_id=` for monitoring officers.

A socket is accepted first, so a refusal can say why: one `error` (code, message in the socket's
language), then the close (4403 access, 4409 window or state). After that, every message is parsed into
its typed union; garbage, unknown types and messages out of order are answered with `error` and change
nothing — the socket and the visit go on. The work is `services.live_rooms.LiveRooms`'.

Authentication: the session cookie (a visitor, staff, or a resident at a station), or `?token=` with a
bearer token. A cookie only counts when the browser's Origin is this site, so another site cannot open a
visit's socket with someone's cookie."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from itertools import count
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from openvisit.domain.errors import N_, DomainError, NotAuthenticated
from openvisit.domain.principal import Principal
from openvisit.media.engine import MediaError, Side
from openvisit.realtime import messages
from openvisit.realtime.hub import CLOSE_FORBIDDEN, CLOSE_NORMAL, CLOSE_STATE
from openvisit.services import auth
from openvisit.services.context import AppContext, RequestMeta
from openvisit.services.live_rooms import LiveRooms, Seat
from openvisit.web.deps import MAX_ID
from openvisit.web.i18n import pick_language, translate
from openvisit.web.templating import LANGUAGE_COOKIE, SESSION_COOKIE

log = logging.getLogger("openvisit.web")
router = APIRouter()
_INTERNAL = DomainError("internal", N_("Something went wrong on our side. Please try again."))
_keys = count(1)


class SocketConnection:
    """A Starlette WebSocket as the hub sees it: sends are serialised, a closed socket swallows them."""

    def __init__(self, websocket: WebSocket, language: str, who: str) -> None:
        self.websocket = websocket
        self._language = language
        self._key = f"{who}#{next(_keys)}"
        self._lock = asyncio.Lock()
        self.closed = False

    @property
    def key(self) -> str:
        return self._key

    @property
    def language(self) -> str:
        return self._language

    async def send(self, message: Mapping[str, Any]) -> None:
        async with self._lock:
            if self.closed or self.websocket.application_state is not WebSocketState.CONNECTED:
                return
            try:
                await self.websocket.send_json(dict(message))
            except (RuntimeError, OSError, WebSocketDisconnect):
                self.closed = True

    async def close(self, code: int) -> None:
        async with self._lock:
            if self.closed:
                return
            self.closed = True
            if (
                self.websocket.application_state is WebSocketState.CONNECTED
                and self.websocket.client_state is not WebSocketState.DISCONNECTED
            ):
                with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
                    await self.websocket.close(code)

    async def error(self, exc: DomainError, *, visit_id: int | None = None) -> None:
        """Answer with the error's code and its message in the socket's language."""
        text = translate(self._language, exc.message, exc.params)
        await self.send(messages.error(exc.code, text, visit_id=visit_id))


def _rooms(websocket: WebSocket) -> LiveRooms:
    rooms: LiveRooms = websocket.app.state.live
    return rooms


def _ctx(websocket: WebSocket) -> AppContext:
    ctx: AppContext = websocket.app.state.ctx
    return ctx


def _meta(websocket: WebSocket) -> RequestMeta:
    host = websocket.client.host if websocket.client else "unknown"
    return RequestMeta(ip=host, user_agent=websocket.headers.get("user-agent", "")[:300])


def _same_origin(websocket: WebSocket, ctx: AppContext) -> bool:
    """A browser always sends Origin with a WebSocket; it must be this site (its Host or base_url)."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    parsed = urlsplit(origin)
    allowed = {websocket.headers.get("host", ""), urlsplit(ctx.settings.base_url).netloc}
    return parsed.netloc in allowed


def _authenticate(ctx: AppContext, websocket: WebSocket, token: str | None) -> Principal | None:
    if token:
        return auth.principal_from_api_token(ctx, token)
    cookie = websocket.cookies.get(SESSION_COOKIE)
    if not cookie or not _same_origin(websocket, ctx):
        return None
    return auth.principal_from_session(ctx, cookie)


async def _open(websocket: WebSocket, token: str | None) -> tuple[Principal | None, str]:
    ctx = _ctx(websocket)
    await websocket.accept()
    principal = await asyncio.to_thread(_authenticate, ctx, websocket, token)
    language = pick_language(
        websocket.cookies.get(LANGUAGE_COOKIE),
        principal.language if principal else None,
        accept_language=websocket.headers.get("accept-language"),
    )
    return principal, language


def _close_code(exc: DomainError) -> int:
    """4409 for the window or the state of the visit (or of the server), 4403 for everything else."""
    return CLOSE_STATE if exc.kind == "conflict" else CLOSE_FORBIDDEN


async def _refuse(conn: SocketConnection, exc: DomainError) -> None:
    await conn.error(exc)
    await conn.close(_close_code(exc))


async def _receive(websocket: WebSocket) -> str | bytes | None:
    """The next message's text (or bytes), None once the socket is gone."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        return None
    text = message.get("text")
    if text is not None:
        return str(text)
    data = message.get("bytes")
    return bytes(data) if data is not None else b""


@router.websocket("/ws/visits/{visit_id}")
async def visit_socket(
    websocket: WebSocket, visit_id: int, token: Annotated[str | None, Query()] = None
) -> None:
    """One side of a live visit (docs/signalling.md)."""
    principal, language = await _open(websocket, token)
    conn = SocketConnection(websocket, language, f"visit-{visit_id}")
    rooms = _rooms(websocket)
    meta = _meta(websocket)
    try:
        if principal is None:
            raise NotAuthenticated()
        if not 1 <= visit_id <= MAX_ID:
            raise messages.SignalError()
        await rooms.check_join(principal, visit_id, meta)
    except DomainError as exc:
        await _refuse(conn, exc)
        return
    seat: Seat | None = None
    try:
        while not conn.closed:
            raw = await _receive(websocket)
            if raw is None:
                break
            try:
                message = messages.parse_participant(raw)
                if isinstance(message, messages.Ping):
                    await conn.send(messages.pong())
                elif isinstance(message, messages.Hello):
                    if seat is not None:
                        raise messages.OutOfOrder()
                    if not message.rules_accepted:
                        raise messages.OutOfOrder(
                            "live.rules_not_accepted", N_("Please accept the rules to join.")
                        )
                    try:
                        seat = await rooms.join(principal, visit_id, conn, meta)
                    except MediaError:
                        raise  # the media could not be set up: said, and the side may say hello again
                    except DomainError as exc:
                        await _refuse(conn, exc)
                        return
                elif seat is None:
                    raise messages.OutOfOrder()
                elif isinstance(message, messages.Offer):
                    await rooms.offer(seat, conn, message.sdp)
                elif isinstance(message, messages.Leave):
                    await rooms.leave(seat, conn)
                    await conn.close(CLOSE_NORMAL)
                    seat = None
                    return
            except DomainError as exc:
                await conn.error(exc)
            except (WebSocketDisconnect, asyncio.CancelledError):
                raise
            except Exception:
                # A fault of ours while handling one message: said, logged, and the visit goes on.
                log.exception("a message on visit %s's socket failed", visit_id)
                await conn.error(_INTERNAL)
    except WebSocketDisconnect:
        pass
    finally:
        if seat is not None:
            try:
                await rooms.disconnected(seat, conn)
            except Exception:
                log.exception("the departure of a side of visit %s could not be recorded", visit_id)
        await conn.close(CLOSE_NORMAL)


def _side(name: str) -> Side:
    return Side(name)


@router.websocket("/ws/monitor")
async def monitor_socket(
    websocket: WebSocket,
    facility_id: Annotated[int | None, Query()] = None,
    token: Annotated[str | None, Query()] = None,
) -> None:
    """A monitoring officer's wall of a facility (docs/signalling.md)."""
    principal, language = await _open(websocket, token)
    conn = SocketConnection(websocket, language, "monitor")
    rooms = _rooms(websocket)
    meta = _meta(websocket)
    try:
        if principal is None:
            raise NotAuthenticated()
        if facility_id is None or not 1 <= facility_id <= MAX_ID:
            raise messages.SignalError("request.invalid", N_("The request is not valid."))
        await rooms.open_wall(principal, facility_id, conn)
    except DomainError as exc:
        await _refuse(conn, exc)
        return
    try:
        while not conn.closed:
            raw = await _receive(websocket)
            if raw is None:
                break
            visit: int | None = None
            try:
                message = messages.parse_monitor(raw)
                if isinstance(message, messages.Ping):
                    await conn.send(messages.pong())
                    continue
                visit = message.visit_id
                if isinstance(message, messages.Watch):
                    await rooms.watch(principal, facility_id, conn, message.visit_id, message.sdp, meta)
                elif isinstance(message, messages.Unwatch):
                    await rooms.unwatch(conn, message.visit_id)
                elif isinstance(message, messages.Warn):
                    await rooms.warn(principal, message.visit_id, message.text, meta)
                elif isinstance(message, messages.Pause):
                    await rooms.pause(principal, message.visit_id, _side(message.side), message.paused, meta)
                else:
                    await rooms.terminate(principal, message.visit_id, message.reason, message.note, meta)
            except DomainError as exc:
                await conn.error(exc, visit_id=visit)
            except (WebSocketDisconnect, asyncio.CancelledError):
                raise
            except Exception:
                log.exception("a message on a monitor's socket failed")
                await conn.error(_INTERNAL, visit_id=visit)
    except WebSocketDisconnect:
        pass
    finally:
        await rooms.close_wall(facility_id, conn)
        await conn.close(CLOSE_NORMAL)
