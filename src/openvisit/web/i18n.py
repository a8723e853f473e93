"""Languages (English, Russian) chosen per person, and dates shown in the facility's zone and the viewer's."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_date, format_time, get_timezone_location
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).with_name("locales")
LANGUAGES: dict[str, str] = {"en": "English", "ru": "Русский"}
DEFAULT_LANGUAGE = "en"


@lru_cache(maxsize=8)
def translations(language: str) -> NullTranslations:
    """The catalog of `language`, compiled from its .po in memory once per process, so the
    translations in use are always those in the source tree. English is the source language."""
    path = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    if language == DEFAULT_LANGUAGE or not path.exists():
        return NullTranslations()
    with path.open("rb") as source:
        catalog = read_po(source, locale=language)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(fp=compiled, domain="messages")


def pick_language(*candidates: str | None, accept_language: str | None = None) -> str:
    """The first supported language among explicit choices, then the browser's Accept-Language."""
    for candidate in candidates:
        if candidate in LANGUAGES:
            return candidate
    if accept_language:
        weighted: list[tuple[float, str]] = []
        for part in accept_language.split(",")[:20]:
            piece = part.strip().split(";")
            tag = piece[0].strip().lower().split("-")[0]
            quality = 1.0
            for param in piece[1:]:
                name, _, value = param.strip().partition("=")
                if name == "q":
                    try:
                        quality = float(value)
                    except ValueError:
                        quality = 0.0
            weighted.append((quality, tag))
        for _quality, tag in sorted(weighted, key=lambda item: -item[0]):
            if tag in LANGUAGES:
                return tag
    return DEFAULT_LANGUAGE


def translate(language: str, message: str, params: dict[str, Any] | None = None) -> str:
    """`message` (an English msgid) in `language`, with %(name)s params filled in."""
    text = translations(language).gettext(message)
    if params:
        try:
            return text % params
        except (KeyError, TypeError, ValueError):
            return text
    return text


def zone(name: str | None, fallback: str = "UTC") -> ZoneInfo:
    try:
        return ZoneInfo(name or fallback)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(fallback)


def _offset(value: datetime, zone_info: ZoneInfo) -> str:
    delta = zone_info.utcoffset(value)
    minutes = int(delta.total_seconds() // 60) if delta is not None else 0
    sign = "+" if minutes >= 0 else "−"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def format_when(value: datetime | None, language: str, tz: str) -> str:
    """A moment in `tz`, in the reader's language, naming the zone so nobody has to guess:
    "Mar 2, 2026 16:00 (Krasnoyarsk, UTC+7)"."""
    if value is None:
        return ""
    zone_info = zone(tz)
    local = value.astimezone(zone_info)
    place = get_timezone_location(zone_info, locale=language, return_city=True)
    day = format_date(local, format="medium", locale=language)
    clock = format_time(local, format="HH:mm", locale=language)
    offset = _offset(value, zone_info)
    label = offset if place == offset or place == "UTC" else f"{place}, {offset}"
    return f"{day} {clock} ({label})"


def format_both(value: datetime | None, language: str, facility_tz: str, viewer_tz: str) -> str:
    """A moment in the facility's time and, when the viewer's zone differs then, in theirs too."""
    if value is None:
        return ""
    here = format_when(value, language, facility_tz)
    if zone(facility_tz).utcoffset(value) == zone(viewer_tz).utcoffset(value):
        return here
    return f"{here} · {format_when(value, language, viewer_tz)}"
