"""Keep the translation catalogs in step with the code.

python -m tools.messages update   # extract messages, merge them into every locale's .po
python -m tools.messages check    # exit 1 listing every message without a translation
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "openvisit"
LOCALES = SOURCE / "web" / "locales"
LANGUAGES = ("ru",)
DOMAIN = "messages"

# Messages are English msgids passed to gettext markers and to the DomainError tree (second argument).
KEYWORDS: dict[str, tuple[int, ...] | None] = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "N_": None,
    "translate": (2,),
    "DomainError": (2,),
    "InvalidInput": (2,),
    "NotAuthenticated": (2,),
    "Forbidden": (2,),
    "NotFound": (2,),
    "Conflict": (2,),
    "TooManyRequests": (2,),
}
METHOD_MAP = [("**.py", "python"), ("web/templates/**.html", "jinja2")]
OPTIONS_MAP = {"web/templates/**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}}


def extract() -> Catalog:
    """Every translatable message in the package."""
    catalog = Catalog(project="OpenVisit", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
        str(SOURCE), METHOD_MAP, OPTIONS_MAP, keywords=KEYWORDS, strip_comment_tags=True
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def po_path(language: str) -> Path:
    return LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def load(language: str) -> Catalog:
    path = po_path(language)
    if not path.exists():
        return Catalog(locale=language, project="OpenVisit", charset="utf-8")
    with path.open("rb") as fh:
        return read_po(fh, locale=language)


def save(language: str, catalog: Catalog) -> None:
    path = po_path(language)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        write_po(fh, catalog, omit_header=False, no_location=True, sort_output=True, width=100)


def update() -> None:
    """Merge the current messages into each catalog (new ones untranslated, gone ones dropped)."""
    template = extract()
    for language in LANGUAGES:
        catalog = load(language)
        catalog.update(template, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        save(language, catalog)


def missing(language: str) -> list[str]:
    """Messages in the code that `language` does not translate (or only fuzzily)."""
    catalog = load(language)
    gaps: list[str] = []
    for message in extract():
        if not message.id:
            continue
        found = catalog.get(message.id, context=message.context)
        strings = found.string if found is not None else None
        if found is None or found.fuzzy or not strings or (isinstance(strings, tuple) and not all(strings)):
            gaps.append(message.id if isinstance(message.id, str) else message.id[0])
    return gaps


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    if command == "update":
        update()
        return 0
    if command == "check":
        failed = False
        for language in LANGUAGES:
            for msgid in missing(language):
                failed = True
                print(f"{language}: untranslated: {msgid!r}")
        return 1 if failed else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
