"""Languages (English, Russian) and moments shown in a named zone, for every layer that writes to people:
the web pages and the notifications alike. It sits beside settings.py, below the layers, so that
notify/ can speak the reader's language without importing the web.

The catalogs live in web/locales (one catalog for the whole project, kept by `make messages`)."""

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

LOCALE_DIR = Path(__file__).parent / "web" / "locales"
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
    """The zone called `name`, or `fallback` when it is missing or unknown."""
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


def same_offset(value: datetime, first_tz: str, second_tz: str) -> bool:
    """Whether two zones show the same wall clock at `value` (then one time is enough)."""
    return zone(first_tz).utcoffset(value) == zone(second_tz).utcoffset(value)


def format_both(value: datetime | None, language: str, facility_tz: str, viewer_tz: str) -> str:
    """A moment in the facility's time and, when the viewer's zone differs then, in theirs too."""
    if value is None:
        return ""
    here = format_when(value, language, facility_tz)
    if same_offset(value, facility_tz, viewer_tz):
        return here
    return f"{here} · {format_when(value, language, viewer_tz)}"
