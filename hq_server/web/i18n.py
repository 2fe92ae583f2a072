"""The console's languages: gettext catalogues (zh_CN, en) read with Babel from the .po files in
hq_server/web/locale at first use (no build step), the language of a request, and dates, numbers
and durations written the way its locale writes them.

Mark a string for translation with `_("...")` in templates and `N_("...")` in Python (then
translate it with `t.gettext(...)` where a request's Translator is at hand);
tests/web/test_i18n.py fails on a marked string missing from either catalogue. See
docs/console.md.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel.dates import (
    DateTimePattern,
    format_timedelta,
    get_date_format,
    get_datetime_format,
    get_time_format,
)
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES: tuple[str, ...] = ("zh_CN", "en")
DEFAULT_LANGUAGE = "en"
# The names of the languages in themselves, for the language switch.
LANGUAGE_NAMES = {"zh_CN": "简体中文", "en": "English"}


def N_(message: str) -> str:
    """Mark `message` for translation where no translator is at hand; returns it unchanged."""
    return message


# Grade names (protocol.grades.Grade), translated where shown; the grade's number is shown too,
# so a grade never depends on colour or on reading the name.
GRADE_NAMES: dict[int, str] = {
    1: N_("Major"),
    2: N_("Severe"),
    3: N_("General"),
    4: N_("Minor"),
    5: N_("Request"),
}

# Role names (hq_server.core.domain.Role values), translated where shown.
ROLE_NAMES: dict[str, str] = {
    "viewer": N_("viewer"),
    "engineer": N_("engineer"),
    "admin": N_("admin"),
}


@functools.cache
def catalogue(language: str) -> dict[str, str]:
    """msgid -> msgstr of a language's catalogue (read once per process)."""
    path = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    return {
        str(message.id): str(message.string)
        for message in catalog
        if message.id and isinstance(message.id, str) and message.string
    }


def negotiate(accept_language: str | None) -> str:
    """The language to use for an Accept-Language header (DEFAULT_LANGUAGE if none fits)."""
    if not accept_language:
        return DEFAULT_LANGUAGE
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag:
            ranked.append((-quality, index, tag.strip().lower().replace("_", "-")))
    for quality, _index, tag in sorted(ranked):
        if quality >= 0:
            continue
        if tag == "zh" or tag.startswith(("zh-cn", "zh-hans", "zh-sg")):
            return "zh_CN"
        if tag.startswith("zh"):  # zh-TW, zh-HK: Simplified Chinese is closer than English
            return "zh_CN"
        if tag == "en" or tag.startswith("en-"):
            return "en"
    return DEFAULT_LANGUAGE


def known(language: str | None) -> str | None:
    """`language` if the console has it, else None."""
    return language if language in LANGUAGES else None


@functools.cache
def zone(name: str) -> ZoneInfo:
    """The time zone called `name` (UTC if unknown)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@dataclass(frozen=True, slots=True)
class Translator:
    """One language's strings and formats, for one request."""

    language: str

    @property
    def locale(self) -> Locale:
        """The Babel locale."""
        return _locale(self.language)

    @property
    def html_lang(self) -> str:
        """The language as an HTML lang attribute (zh-CN, en)."""
        return self.language.replace("_", "-")

    def gettext(self, message: str, **values: object) -> str:
        """`message` in this language, with %(name)s placeholders filled from `values`."""
        text = catalogue(self.language).get(message, message)
        return text % values if values else text

    def grade(self, grade: int) -> str:
        """A grade as "1 Major" / "1 重大" (the number always shown)."""
        name = GRADE_NAMES.get(grade)
        return f"{grade} {self.gettext(name)}" if name else str(grade)

    def when(self, value: datetime | None, zone_name: str = "UTC") -> str:
        """An instant in the zone `zone_name`, the zone named: "2026-03-02 16:00 Asia/Shanghai"
        in the locale's medium format."""
        if value is None:
            return "—"
        tz = zone(zone_name)
        local = value.astimezone(tz)
        date, time, glue = _medium(self.language)
        # What babel.dates.format_datetime(..., "medium") writes, with its patterns looked up
        # once per language (the overview writes a thousand of these per page).
        locale = self.locale
        text = glue.replace("{0}", time.apply(local, locale)).replace(
            "{1}", date.apply(local, locale)
        )
        return f"{text} {tz.key}"

    def number(self, value: float) -> str:
        """A number with the locale's grouping."""
        return format_decimal(value, locale=self.locale)

    def duration(self, value: timedelta) -> str:
        """A duration the way the locale says it ("3 hours", "3小时")."""
        return format_timedelta(value, threshold=1.5, locale=self.locale)


@functools.cache
def _locale(language: str) -> Locale:
    return Locale.parse(language)


@functools.cache
def _medium(language: str) -> tuple[DateTimePattern, DateTimePattern, str]:
    """The locale's medium date and time patterns, and how it joins them."""
    locale = _locale(language)
    glue = str(get_datetime_format("medium", locale)).replace("'", "")
    return get_date_format("medium", locale), get_time_format("medium", locale), glue


@functools.cache
def translator(language: str) -> Translator:
    """The Translator of a language the console has (DEFAULT_LANGUAGE otherwise)."""
    return Translator(known(language) or DEFAULT_LANGUAGE)
