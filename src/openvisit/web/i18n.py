"""Languages (English, Russian) chosen per person, and dates shown in the facility's zone and the viewer's.

The catalogs and the formatting of moments live in `openvisit.i18n`, below the layers, because the
notifications (notify/) write in the reader's language too and may not import the web; they are
re-exported here under their old names. What only a web request needs (Accept-Language) stays here."""

from __future__ import annotations

from openvisit.i18n import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    LOCALE_DIR,
    format_both,
    format_when,
    translate,
    translations,
    zone,
)

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "LOCALE_DIR",
    "format_both",
    "format_when",
    "pick_language",
    "translate",
    "translations",
    "zone",
]


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
