"""The wallboard's assets: every label in every language, fonts that cover them, nothing external."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fontTools.ttLib import TTFont

from pipeline import wallboard

HERE = Path(wallboard.__file__).resolve().parent
LABELS = json.loads((HERE / "labels.json").read_text(encoding="utf-8"))


def test_every_language_has_every_label() -> None:
    keys = set(LABELS["en"])
    assert set(LABELS) == {"en", "ja", "ko"}
    for language, labels in LABELS.items():
        assert set(labels) == keys, language
        assert all(value.strip() for value in labels.values()), language


def test_the_page_asks_only_for_labels_that_exist() -> None:
    page = "".join((HERE / name).read_text(encoding="utf-8")
                   for name in ("index.html", "wallboard.js", "agents.html", "agents.js", "contacts.html",
                                "contacts.js", "common.js"))  # fmt: skip
    asked = set(re.findall(r'data-label="([a-z_0-9]+)"', page)) | set(
        re.findall(r'(?<![\w.])t\("([a-z_0-9]+)"\)', page)
    )
    assert asked and asked <= set(LABELS["en"]), asked - set(LABELS["en"])
    channels = {"voice", "chat", "email", "sms", "social", "in_person"}  # EVENTS.md channels
    assert channels <= set(LABELS["en"])


def test_the_served_fonts_cover_every_label() -> None:
    wanted = {c for labels in LABELS.values() for value in labels.values() for c in value if not c.isspace()}
    wanted |= set("0123456789%:–▲▼▶●■◆○!")  # the agent list's state marks too
    for name in ("ccpulse-cjk-regular.woff2", "ccpulse-cjk-bold.woff2"):
        covered = set(map(chr, TTFont(HERE / "fonts" / name).getBestCmap()))
        missing = sorted(wanted - covered)
        assert not missing, f"{name} lacks {missing}: run deploy/wallboard/make_font.py"


def test_the_page_loads_nothing_from_elsewhere() -> None:
    for name in wallboard.ASSETS:
        if name.endswith((".html", ".css", ".js")):
            text = (HERE / name).read_text(encoding="utf-8")
            assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE), name


def test_only_listed_assets_are_served() -> None:
    assert wallboard.asset("wallboard.js") is not None
    assert wallboard.asset("fonts/ccpulse-cjk-bold.woff2")[1] == "font/woff2"  # type: ignore[index]
    for name in ("../settings.py", "__init__.py", "fonts/LICENSE", "/etc/passwd"):
        assert wallboard.asset(name) is None, name
