"""A page as text: subject, facts, plain text, Markdown, HTML and a short SMS text.

Every channel builds its message from these, so the wording (catalogue.py) and the order of
the facts are the same everywhere; only the vendor's format around them differs.
"""

from __future__ import annotations

import html as html_lib
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from hq_server.channels.base import DigestItem, EventKind, Page
from hq_server.channels.catalogue import message

TIME_FORMAT = "%Y-%m-%d %H:%M"
SMS_TIME_FORMAT = "%m-%d %H:%M"
# Grade colours (HTML mail, Feishu card header): red, orange, yellow, blue, grey.
GRADE_COLOURS = {1: "#d93025", 2: "#e8710a", 3: "#f9ab00", 4: "#1a73e8", 5: "#5f6368"}
CLOSED_COLOUR = "#188038"


def one_line(text: str) -> str:
    """`text` on one line (a title must not add lines, headings or quotes to a message)."""
    return " ".join(text.split())


def grade_text(language: str, grade: int, own: str | None = None, *, value: bool = False) -> str:
    """The grade in words ("1级 重大故障", "grade 1 major system fault"), own name first.

    `value`: the form that follows a "Grade" label ("1 (major system fault)").
    """
    name = message(language, f"grade.{grade}")
    key = "grade.value" if value else "grade.label"
    if own:
        return message(language, f"{key}.own", own=one_line(own), grade=grade, name=name)
    return message(language, key, grade=grade, name=name)


def local_time(when: datetime, zone: str) -> datetime:
    """`when` in `zone`."""
    return when.astimezone(ZoneInfo(zone))


def deadline_text(language: str, when: datetime, zone: str) -> str:
    """The deadline in `zone`, the zone named: "2026-03-02 16:10 (Asia/Shanghai, UTC+08:00)"."""
    local = local_time(when, zone)
    offset = local.strftime("%z")
    return message(
        language,
        "deadline.format",
        time=local.strftime(TIME_FORMAT),
        zone=zone,
        offset=f"{offset[:3]}:{offset[3:]}",
    )


def event_text(page: Page) -> str:
    """What happened: "新故障" / "New fault"."""
    return message(page.language, f"event.{page.kind.value}")


def subject(page: Page) -> str:
    """The one-line subject (e-mail subject, card title)."""
    prefix = message(page.language, "prefix")
    if page.kind is EventKind.DIGEST:
        count = message(page.language, "digest.count", count=page.count)
        return f"{prefix} {event_text(page)} · {count} · {one_line(page.title)}"
    grade = grade_text(page.language, page.grade, page.grade_name)
    return (
        f"{prefix} {event_text(page)} {page.ticket_number} · {grade} · "
        f"{one_line(page.site)} · {one_line(page.title)}"
    )


def headline(page: Page) -> str:
    """A short title for a notification banner: event, grade and site."""
    if page.kind is EventKind.DIGEST:
        count = message(page.language, "digest.count", count=page.count)
        return f"{event_text(page)} · {count}"
    grade = grade_text(page.language, page.grade, page.grade_name)
    return f"{event_text(page)} · {grade} · {one_line(page.site)}"


def facts(page: Page) -> list[tuple[str, str]]:
    """(label, value) lines of a page about one ticket, in the page's language."""
    lang = page.language
    rows = [
        (message(lang, "field.ticket"), str(page.ticket_number)),
        (message(lang, "field.grade"), grade_text(lang, page.grade, page.grade_name, value=True)),
        (message(lang, "field.site"), one_line(page.site)),
    ]
    if page.device:
        rows.append((message(lang, "field.device"), one_line(page.device)))
    rows.append((message(lang, "field.title"), one_line(page.title)))
    if page.deadline is not None:
        rows.append(
            (
                message(lang, f"field.deadline.{page.deadline_kind}"),
                deadline_text(lang, page.deadline, page.zone),
            )
        )
    return rows


def item_line(page: Page, item: DigestItem) -> str:
    """One ticket of a digest on one line."""
    lang = page.language
    parts = [item.ticket_number, grade_text(lang, item.grade), one_line(item.site)]
    if item.device:
        parts.append(one_line(item.device))
    parts.append(one_line(item.title))
    if item.deadline is not None:
        label = message(lang, f"field.deadline.{page.deadline_kind}")
        parts.append(f"{label}{message(lang, 'field.sep')}{_short_time(item.deadline, page.zone)}")
    return " · ".join(parts)


def _short_time(when: datetime, zone: str) -> str:
    return local_time(when, zone).strftime(TIME_FORMAT)


def link_text(page: Page) -> str:
    """The words of the link to the console."""
    key = "link.tickets" if page.kind is EventKind.DIGEST else "link.ticket"
    return message(page.language, key)


def plain_text(page: Page) -> str:
    """The page as plain text (e-mail text part, text messages)."""
    sep = message(page.language, "field.sep")
    lines = [subject(page), ""]
    if page.kind is EventKind.DIGEST:
        lines += [f"- {item_line(page, item)}" for item in page.items]
    else:
        lines += [f"{label}{sep}{value}" for label, value in facts(page)]
    if page.detail:
        lines += ["", page.detail]
    lines += ["", f"{link_text(page)}{sep}{page.link}"]
    return "\n".join(lines) + "\n"


def link_markdown(page: Page) -> str:
    """The Markdown link to the console."""
    return f"[{link_text(page)}]({page.link})"


def markdown(
    page: Page, *, paragraph: str = "\n", mentions: Sequence[str] = (), link: bool = True
) -> str:
    """The page as Markdown; `paragraph` separates lines (DingTalk needs a blank line)."""
    sep = message(page.language, "field.sep")
    lines = [f"### {subject(page)}"]
    if page.kind is EventKind.DIGEST:
        lines += [f"- {item_line(page, item)}" for item in page.items]
    else:
        lines += [f"**{label}**{sep}{value}" for label, value in facts(page)]
    if page.detail:
        lines.append("> " + one_line(page.detail))
    if link:
        lines.append(link_markdown(page))
    if mentions:
        lines.append(" ".join(f"@{m}" for m in mentions))
    return paragraph.join(lines)


def colour(page: Page) -> str:
    """The colour of the page: the grade's, or green once acknowledged or resolved."""
    if page.kind in (EventKind.ACKNOWLEDGED, EventKind.RESOLVED):
        return CLOSED_COLOUR
    return GRADE_COLOURS[page.grade]


def html(page: Page) -> str:
    """The page as a small HTML document (e-mail HTML part); every value is escaped."""
    esc = html_lib.escape
    rows: list[str] = []
    if page.kind is EventKind.DIGEST:
        rows += [f"<li>{esc(item_line(page, item))}</li>" for item in page.items]
        body = f"<ul>{''.join(rows)}</ul>"
    else:
        rows += [
            f'<tr><th align="left" style="padding-right:1em">{esc(label)}</th>'
            f"<td>{esc(value)}</td></tr>"
            for label, value in facts(page)
        ]
        body = f"<table>{''.join(rows)}</table>"
    detail = f"<p>{esc(page.detail)}</p>" if page.detail else ""
    return (
        f'<!DOCTYPE html><html lang="{page.language}"><head><meta charset="utf-8">'
        f"<title>{esc(subject(page))}</title></head><body>"
        f'<h2 style="color:{colour(page)}">{esc(subject(page))}</h2>{body}{detail}'
        f'<p><a href="{esc(page.link, quote=True)}">{esc(link_text(page))}</a></p>'
        f'<p style="color:#5f6368">{esc(message(page.language, "footer"))}</p>'
        "</body></html>"
    )


def short_text(page: Page, limit: int) -> str:
    """The page in at most `limit` characters (SMS): the link kept whole, the rest cut.

    Most important first: event, grade, site, deadline, then device, title, ticket number.
    No "[StationWatch]" prefix: the gateway's SMS signature names the sender.
    """
    lang = page.language
    if page.kind is EventKind.DIGEST:
        count = message(lang, "digest.count", count=page.count)
        pieces = [event_text(page), count]
        pieces += [f"{i.ticket_number} {i.site} {i.title}" for i in page.items]
    else:
        pieces = [event_text(page), grade_text(lang, page.grade, page.grade_name), page.site]
        if page.deadline is not None:
            when = local_time(page.deadline, page.zone).strftime(SMS_TIME_FORMAT)
            pieces.append(message(lang, f"sms.deadline.{page.deadline_kind}", time=when))
        if page.device:
            pieces.append(page.device)
        pieces += [page.title, str(page.ticket_number)]
    text = " ".join(one_line(piece) for piece in pieces)
    room = limit - len(page.link) - 1
    if len(text) > room:
        # The link is kept whole even in the odd case that it alone is over the limit.
        text = text[: max(0, room - 1)] + "…" if room > 1 else ""
    return f"{text} {page.link}".lstrip()
