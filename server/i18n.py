"""The languages of the console, the notifications and the reports: Simplified Chinese (default) and English.

The source text of every message (its msgid) is the Chinese the duty staff read. The product is Chinese
first: a message without a translation shows its Chinese, and the Chinese UI needs no catalog at all, so a
missing or stale catalog can never break it. English is the one catalog,
server/translations/en/LC_MESSAGES/messages.po (docs/i18n.md; `scripts/i18n.sh extract|update|compile`).

A catalog is read from its compiled .mo when that is at least as new as the .po, otherwise compiled from the
.po in memory when first used: a fresh clone, `pip install -e .` and an edited .po all work without a build
step, and the server never writes into its own package directory (which a deployment keeps read-only).
"""

from __future__ import annotations

import functools
import io
import logging
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from babel.dates import format_datetime
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

log = logging.getLogger("venuewatch.i18n")

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"
# Each language named in itself, for the language switch: never translated.
LANG_NAMES = {"zh": "中文", "en": "English"}
# Babel locales for dates and numbers. en_GB: a 24-hour clock and day before month, as a duty room expects.
LOCALES = {"zh": "zh_Hans_CN", "en": "en_GB"}
HTML_LANG = {"zh": "zh-CN", "en": "en-GB"}  # <html lang>, and the browser's Intl formatting in the console
CATALOGS = Path(__file__).parent / "translations"
DOMAIN = "messages"

# Date and time patterns per language (Babel/CLDR syntax). Chinese keeps the numeric forms the reports and
# messages have always used; English spells the month, so 03/04 is never read the American way.
_PATTERNS = {
    "zh": {"datetime": "yyyy-MM-dd HH:mm", "date": "yyyy-MM-dd", "time": "HH:mm:ss", "hm": "HH:mm"},
    "en": {"datetime": "d MMM yyyy, HH:mm", "date": "d MMM yyyy", "time": "HH:mm:ss", "hm": "HH:mm"},
}


def N_(message: str) -> str:
    """Mark a message for the catalog where it is defined; it is translated where it is shown."""
    return message


def NP_(context: str, message: str) -> tuple[str, str]:
    """Mark a message with a context (the same Chinese that needs two English words)."""
    return context, message


def lang_or_default(value: Any) -> str:
    return value if value in LANGS else DEFAULT_LANG


def catalog_path(lang: str) -> Path:
    return CATALOGS / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def translations(lang: str) -> NullTranslations:
    """The catalog of `lang` (Chinese, the source language, has none)."""
    if lang not in LANGS or lang == DEFAULT_LANG:
        return NullTranslations()
    po = catalog_path(lang)
    mo = po.with_suffix(".mo")
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as fh:
            return Translations(fh, DOMAIN)
    if not po.exists():
        log.error("event=catalog_missing lang=%s path=%s hint=reinstall venuewatch", lang, po)
        return NullTranslations()
    return Translations(io.BytesIO(compile_po(po)), DOMAIN)


def compile_po(po: Path) -> bytes:
    """The .mo bytes of a .po file. Fuzzy entries are left out, as `pybabel compile` does."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as fh:
        catalog = read_po(fh)
    out = io.BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


class Text:
    """gettext and the date and number formats of one language, for work outside a web request (the
    notifications, the reports). The console uses Flask-Babel, on the same catalogs (server/web/i18n.py)."""

    def __init__(self, lang: str, tz: tzinfo | None = None) -> None:
        self.lang = lang_or_default(lang)
        self.locale = LOCALES[self.lang]
        self.tz = tz
        self._catalog = translations(self.lang)

    def __repr__(self) -> str:
        return f"Text({self.lang!r}, tz={self.tz})"

    def gettext(self, message: str, **variables: Any) -> str:
        text = self._catalog.ugettext(message)
        return text % variables if variables else text

    def pgettext(self, context: str, message: str, **variables: Any) -> str:
        text = self._catalog.upgettext(context, message)
        return text % variables if variables else text

    def ngettext(self, singular: str, plural: str, num: int, **variables: Any) -> str:
        variables.setdefault("num", num)
        return self._catalog.ungettext(singular, plural, num) % variables

    def datetime(self, value: datetime, width: str = "datetime") -> str:
        """A moment in the configured time zone: "2026-11-25 23:05" / "25 Nov 2026, 23:05"."""
        return format_datetime(value, _PATTERNS[self.lang][width], tzinfo=self.tz, locale=self.locale)

    def decimal(self, value: float, digits: int = 1) -> str:
        """1234.5 as "1,234.5" with `digits` decimals."""
        # Rounded here first, as an f-string would: Babel would round the decimal text instead.
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return format_decimal(round(value, digits), pattern, locale=self.locale)

    def number(self, value: int) -> str:
        return format_decimal(value, "#,##0", locale=self.locale)

    def percent(self, value: float | None) -> str:
        """A ratio as a percentage with one decimal ("95.3%"); "—" when there is none."""
        # value * 100 rounded as the f-string "{value * 100:.1f}%" did: CSV readers compare the two.
        return "—" if value is None else self.decimal(value * 100) + "%"
