"""Make the wallboard's font: Noto Sans CJK (SIL Open Font License), cut down to the characters
the board prints — Latin, digits, the symbols, and every Japanese and Korean label.

Run after changing ``pipeline/wallboard/labels.json`` (a unit test fails until you do):

    apt-get install -y fonts-noto-cjk && .venv/bin/pip install fonttools brotli
    .venv/bin/python deploy/wallboard/make_font.py
"""

from __future__ import annotations

import json
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection

ROOT = Path(__file__).resolve().parents[2]
LABELS = ROOT / "pipeline" / "wallboard" / "labels.json"
FONTS = ROOT / "pipeline" / "wallboard" / "fonts"
SOURCE = Path("/usr/share/fonts/opentype/noto")
EXTRA = "▲▼▶—…·:%–−●■◆○!"


def characters() -> str:
    labels = json.loads(LABELS.read_text(encoding="utf-8"))
    text = "".join(value for language in labels.values() for value in language.values())
    text += "".join(chr(c) for c in range(0x20, 0x7F)) + EXTRA
    return "".join(sorted(set(text)))


def main() -> None:
    wanted = characters()
    for weight in ("Regular", "Bold"):
        collection = TTCollection(str(SOURCE / f"NotoSansCJK-{weight}.ttc"))
        font = next(f for f in collection.fonts if "JP" in f["name"].getDebugName(1))
        options = subset.Options()
        options.flavor = "woff2"
        options.layout_features = ["*"]
        subsetter = subset.Subsetter(options)
        subsetter.populate(text=wanted)
        subsetter.subset(font)
        target = FONTS / f"ccpulse-cjk-{weight.lower()}.woff2"
        font.flavor = "woff2"
        font.save(str(target))
        print(f"{target.relative_to(ROOT)}: {target.stat().st_size:,} bytes, {len(wanted)} characters")


if __name__ == "__main__":
    main()
