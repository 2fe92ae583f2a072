"""Update the console's catalogues from its sources: every string marked with _() in templates
and N_() / t.gettext() in hq_server/web is added to each messages.po (kept translations stay;
English gets the string itself). Run it after adding a string, then translate the new zh_CN
entries (an empty msgstr fails tests/web/test_i18n.py). Usage: .venv/bin/python
scripts/console-strings.py"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "hq_server" / "web"
METHODS = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
KEYWORDS = {"_": None, "N_": None, "gettext": None}


def extract() -> dict[str, list[tuple[str, int]]]:
    """msgid -> where it is used."""
    found: dict[str, list[tuple[str, int]]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        WEB, METHODS, keywords=KEYWORDS, options_map={"**/templates/**.html": {"silent": "false"}}
    ):
        if isinstance(message, str) and message:
            found.setdefault(message, []).append((f"hq_server/web/{filename}", lineno))
    return found


def main() -> int:
    """Merge the extracted strings into each catalogue."""
    found = extract()
    for language in ("zh_CN", "en"):
        path = WEB / "locale" / language / "LC_MESSAGES" / "messages.po"
        old: dict[str, str] = {}
        if path.exists():
            with path.open("rb") as handle:
                old = {str(m.id): str(m.string) for m in read_po(handle) if m.id}
        catalog = Catalog(
            locale=language,
            project="StationWatch console",
            version="1",
            copyright_holder="the StationWatch authors",
            header_comment=f"# The StationWatch console in {language}; update with "
            "scripts/console-strings.py.",
            fuzzy=False,
        )
        for msgid in sorted(found):
            string = old.get(msgid) or (msgid if language == "en" else "")
            catalog.add(msgid, string, locations=found[msgid])
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            write_po(handle, catalog, width=100, omit_header=False, include_lineno=False)
        missing = sum(1 for m in found if not (old.get(m) or language == "en"))
        print(f"{language}: {len(found)} strings, {missing} untranslated", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
