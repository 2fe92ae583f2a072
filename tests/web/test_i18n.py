"""Every string the console shows is in both catalogues (zh_CN translated), no template shows
text outside the translation calls, and dates, numbers and durations follow the locale and the
site's zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from hq_server.web import i18n
from hq_server.web.i18n import LOCALE_DIR, negotiate, translator

WEB = Path(i18n.__file__).parent
METHODS = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
KEYWORDS = {"_": None, "N_": None, "gettext": None}
LOUD = {"**/templates/**.html": {"silent": "false"}}  # a template Jinja cannot parse fails


def _marked() -> set[str]:
    return {
        message
        for _file, _line, message, _comments, _context in extract_from_dir(
            WEB, METHODS, keywords=KEYWORDS, options_map=LOUD
        )
        if isinstance(message, str) and message
    }


def _catalogue(language: str) -> dict[str, str]:
    with (LOCALE_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return {str(m.id): str(m.string) for m in read_po(handle) if m.id}


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_every_marked_string_is_translated(language: str) -> None:
    marked = _marked()
    assert len(marked) > 100  # the extraction found the templates and the code
    catalogue = _catalogue(language)
    missing = sorted(m for m in marked if not catalogue.get(m))
    assert not missing, (
        f"not in the {language} catalogue (run scripts/console-strings.py, then translate): "
        f"{missing}"
    )
    for message, text in catalogue.items():  # the same placeholders on both sides
        assert re.findall(r"%\((\w+)\)s", message) == re.findall(r"%\((\w+)\)s", text), message


# Template text outside {{ }}, {% %} and tags: words there would not be translated. Brand names
# and punctuation are fine.
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_TAG = re.compile(r"<[^>]*>", re.S)
ALLOWED = {"StationWatch", "·", "—", ":", "(", ")", ",", "&amp;"}


@pytest.mark.parametrize(
    "template", sorted((WEB / "templates").rglob("*.html")), ids=lambda p: p.name
)
def test_templates_show_no_untranslated_text(template: Path) -> None:
    text = _TAG.sub(" ", _JINJA.sub(" ", template.read_text()))
    words = [w for w in text.split() if w not in ALLOWED]
    assert not words, f"{template.name}: text outside _(): {words}"


def test_accept_language_chooses_the_catalogue() -> None:
    assert negotiate("zh-CN,zh;q=0.9,en;q=0.8") == "zh_CN"
    assert negotiate("en-US,en;q=0.9,zh-CN;q=0.8") == "en"
    assert negotiate("fr-FR, zh-TW;q=0.5") == "zh_CN"
    assert negotiate("fr-FR") == "en"
    assert negotiate("zh-CN;q=0, en") == "en"
    assert negotiate(None) == "en"


def test_dates_are_in_the_sites_zone_with_the_zone_named() -> None:
    at = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    en = translator("en").when(at, "Asia/Shanghai")
    assert en == "Mar 2, 2026, 4:00:00\u202fPM Asia/Shanghai"
    assert translator("zh_CN").when(at, "Asia/Shanghai") == "2026年3月2日 16:00:00 Asia/Shanghai"
    # Summer time in Europe/Berlin: UTC+2.
    assert "10:00:00" in translator("en").when(datetime(2026, 7, 1, 8, tzinfo=UTC), "Europe/Berlin")


def test_numbers_durations_and_grades_follow_the_locale() -> None:
    en, zh = translator("en"), translator("zh_CN")
    assert en.number(20000) == "20,000" and zh.number(20000) == "20,000"
    assert en.duration(timedelta(hours=3)) == "3 hours"
    assert zh.duration(timedelta(hours=3)) == "3小时"
    assert en.grade(1) == "1 Major" and zh.grade(1) == "1 重大"
    assert zh.gettext("Overview") == "总览"
