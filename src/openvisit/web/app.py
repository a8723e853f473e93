"""The application factory: nothing is built at import time; settings come in, an app goes out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from openvisit import __version__
from openvisit.media.engine import MediaEngine
from openvisit.services import delivery, scheduling
from openvisit.services.context import AppContext, Clock, utc_now
from openvisit.services.live_rooms import LiveRooms
from openvisit.settings import Settings
from openvisit.web import (
    api,
    errors,
    pages,
    pages_live,
    pages_registry,
    pages_staff,
    pages_vetting,
    pages_visits,
)
from openvisit.web import ws as live_sockets
from openvisit.web.api import ERROR_RESPONSES
from openvisit.web.api import live as live_api
from openvisit.web.api import scheduling as scheduling_api
from openvisit.web.direct import DirectRoutes, JsonRoute
from openvisit.web.middleware import BodyLimit, LanguageGuess, SecurityHeaders
from openvisit.web.schemas import BookingCreate

STATIC_DIR = Path(__file__).with_name("static")
log = logging.getLogger("openvisit.web")


async def _sweep_forever(context: AppContext) -> None:
    """Expire held times and reject overdue requests on a timer, off the event loop."""
    while True:
        await asyncio.sleep(context.settings.sweep_seconds)
        try:
            result = await run_in_threadpool(scheduling.sweep, context)
        except Exception:
            log.exception("scheduling sweep failed")
            continue
        if result.holds_expired or result.requests_rejected:
            log.info(
                "sweep: %d holds expired, %d requests rejected",
                result.holds_expired,
                result.requests_rejected,
            )


async def _deliver_forever(context: AppContext) -> None:
    """Write due reminders and deliver due notifications on a timer, off the event loop. Safe beside
    other servers and `openvisit worker` processes: each claims its own rows."""
    while True:
        await asyncio.sleep(context.settings.delivery_seconds)
        try:
            result = await run_in_threadpool(delivery.deliver_tick, context)
        except Exception:
            log.exception("notification delivery failed")
            continue
        if result.reminders or result.delivery.claimed:
            log.info("delivery: %s", result.describe())


def media_engine(settings: Settings) -> MediaEngine | None:
    """The engine that carries live visits (settings.media_engine); None: the site runs without video.
    Building it starts nothing: its workers start when the first visit needs them."""
    if settings.media_engine == "none":
        return None
    from openvisit.media.aiortc_engine import AiortcEngine  # aiortc is only imported when it is used

    return AiortcEngine(settings)


def create_app(settings: Settings, *, clock: Clock = utc_now, ctx: AppContext | None = None) -> FastAPI:
    """A FastAPI app serving the API, the pages and the health checks for `settings`."""
    context = ctx or AppContext.from_settings(settings, clock=clock)
    # Outside tests the engine's workers start with the server; a test's app starts them at its first join.
    live_rooms = LiveRooms(context, media_engine(settings), eager=settings.mode != "test")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            # Visits in progress when the server last stopped are closed or kept open for a rejoin.
            await live_rooms.start()
        except Exception:
            log.exception("recovering live visits after the restart failed")
        sweeper = asyncio.create_task(_sweep_forever(context)) if settings.sweep_seconds else None
        deliverer = asyncio.create_task(_deliver_forever(context)) if settings.delivery_seconds else None
        yield
        await live_rooms.stop()
        for task in (sweeper, deliverer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if ctx is None:
            context.db.dispose()

    app = FastAPI(
        title="OpenVisit",
        version=__version__,
        description="Virtual prison visits: vetting, scheduling, live video and privileged legal visits.",
        openapi_url="/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.ctx = context
    app.state.live = live_rooms
    errors.install(app)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], response_model=None)
    async def readyz() -> JSONResponse:
        """The database answers."""
        try:
            await run_in_threadpool(context.db.ping)
        except Exception:
            log.warning("readiness check: database unreachable", exc_info=True)
            return JSONResponse(
                {"error": {"code": "database.unreachable", "message": "The database cannot be reached."}},
                status_code=503,
            )
        return JSONResponse({"status": "ok", "database": context.db.engine.dialect.name})

    app.include_router(api.router())
    app.include_router(live_api.router, prefix="/api/v1", responses=ERROR_RESPONSES)
    app.include_router(live_sockets.router)
    app.include_router(pages.router)
    app.include_router(pages_visits.router)
    app.include_router(pages_staff.router)
    app.include_router(pages_registry.router)
    app.include_router(pages_vetting.router)
    app.include_router(pages_live.router())
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # Innermost first: the language is known before anything can fail, headers go on everything, and
    # bodies are capped before any route (the direct ones included) reads them.
    app.add_middleware(
        DirectRoutes, routes=[JsonRoute("POST", "/api/v1/visits", BookingCreate, scheduling_api.book)]
    )
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders, hsts=settings.secure_cookies)
    app.add_middleware(LanguageGuess)
    return app
