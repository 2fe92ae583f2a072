"""The words of a page: the same facts in zh-CN and en, deadlines in the contact's zone with the
zone named, digests, SMS lengths, escaping; and what a Page refuses."""

from __future__ import annotations

# ruff: noqa: RUF001 -- Chinese text takes full-width punctuation
import datetime as dt

import pytest
from pydantic import ValidationError

from hq_server.channels import DigestItem, Page, compose
from hq_server.channels.catalogue import CATALOGUE
from hq_server.channels.sms import segments
from hq_server.channels.webhook import page_payload
from protocol.grades import DEFAULT_POLICIES, Grade
from tests.channels.conftest import OPENED_AT, make_page


def test_both_languages_have_every_entry() -> None:
    assert set(CATALOGUE["zh-CN"]) == set(CATALOGUE["en"])


def test_grade_names_are_the_projects() -> None:
    for grade in Grade:
        assert CATALOGUE["en"][f"grade.{grade.value}"] == DEFAULT_POLICIES[grade].meaning
    names = [CATALOGUE["zh-CN"][f"grade.{g}"] for g in range(1, 6)]
    assert names == ["重大故障", "严重故障", "一般故障", "轻微故障", "需求"]


@pytest.mark.parametrize(
    ("zone", "language", "shown"),
    [
        ("Asia/Shanghai", "zh-CN", "2026-03-02 16:10（Asia/Shanghai，UTC+08:00）"),
        ("Asia/Shanghai", "en", "2026-03-02 16:10 (Asia/Shanghai, UTC+08:00)"),
        ("Europe/London", "en", "2026-03-02 08:10 (Europe/London, UTC+00:00)"),
        ("America/New_York", "en", "2026-03-02 03:10 (America/New_York, UTC-05:00)"),
    ],
)
def test_deadline_in_the_contacts_zone_with_the_zone_named(
    zone: str, language: str, shown: str
) -> None:
    page = make_page(language, zone=zone)
    assert shown in compose.plain_text(page)


def test_deadline_follows_summer_time() -> None:
    page = make_page(
        "en", zone="Europe/London", deadline=dt.datetime(2026, 7, 1, 8, 0, tzinfo=dt.UTC)
    )
    assert "2026-07-01 09:00 (Europe/London, UTC+01:00)" in compose.plain_text(page)


def test_restore_deadline_is_worded_as_such() -> None:
    page = make_page("zh-CN", kind="acknowledged", deadline_kind="restore")
    text = compose.plain_text(page)
    assert "恢复期限" in text and "故障已确认" in text


def test_contract_grade_name_comes_first() -> None:
    assert "A（1级 重大故障）" in compose.subject(make_page("zh-CN", grade_name="A"))
    assert "Grade: A (1, major system fault)" in compose.plain_text(make_page("en", grade_name="A"))


def test_one_line_fields_cannot_add_lines_and_html_is_escaped() -> None:
    page = make_page("en", title="Off air\n### injected <script>alert(1)</script>")
    markdown = compose.markdown(page)
    assert "\n### injected" not in markdown
    html = compose.html(page)
    assert "<script>" not in html and "&lt;script&gt;" in html


def digest(language: str) -> Page:
    items = [
        DigestItem(
            ticket_id=n,
            ticket_number=f"T-2026-000{n}",
            grade=grade,
            site=f"Site {n}",
            title=f"Fault {n}",
            deadline=OPENED_AT + dt.timedelta(hours=n),
            link=f"https://hq.example.com/console/tickets/{n}",
        )
        for n, grade in ((1, 2), (2, 3))
    ]
    return Page(
        kind="digest",
        language=language,
        idempotency_key="digest:2026-03-02",
        grade=2,
        title="夜间汇总" if language == "zh-CN" else "Night digest",
        zone="Asia/Shanghai",
        link="https://hq.example.com/console/tickets?open=1",
        items=tuple(items),
    )


def test_digest_lists_every_ticket() -> None:
    text = compose.plain_text(digest("zh-CN"))
    assert "故障汇总 · 共2张工单" in text
    assert "- T-2026-0001 · 2级 严重故障 · Site 1 · Fault 1 · 确认期限：2026-03-02 17:00" in text
    assert "查看工单列表：https://hq.example.com/console/tickets?open=1" in text
    payload = page_payload(digest("en"))
    assert [i["number"] for i in payload["items"]] == ["T-2026-0001", "T-2026-0002"]
    assert "ticket" not in payload


def test_sms_segments() -> None:
    assert [segments("a" * n) for n in (160, 161, 306, 307)] == [1, 2, 2, 3]
    assert [segments("中" * n) for n in (70, 71, 134, 135)] == [1, 2, 2, 3]
    # One character outside GSM-7's basic set (€) makes the whole text 70-character segments.
    assert [segments("€" + "a" * n) for n in (69, 70)] == [1, 2]


@pytest.mark.parametrize("language", ["zh-CN", "en"])
@pytest.mark.parametrize("limit", [70, 100, 300])
def test_short_text_stays_within_the_limit_and_keeps_the_link(language: str, limit: int) -> None:
    page = make_page(language)
    text = compose.short_text(page, limit)
    assert len(text) <= limit
    assert text.endswith(" " + page.link)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"deadline": dt.datetime(2026, 3, 2, 8, 10)}, "deadline"),
        ({"zone": "Asia/Beijing"}, "zone"),
        ({"link": "javascript:alert(1)"}, "link"),
        ({"grade": 6}, "grade"),
        ({"language": "fr"}, "language"),
        ({"ticket_number": None}, "ticket_id and ticket_number"),
        ({"kind": "digest"}, "at least one item"),
        ({"idempotency_key": "has space"}, "idempotency_key"),
    ],
)
def test_page_refuses_bad_values(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make_page(**{"language": "en", **changes})
    assert field in str(caught.value)
