"""The wallboard page and its assets, served by the worker at ``/wallboard`` (no CDN, no external
font: everything the page loads comes from here)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".woff2": "font/woff2",
}
ASSETS = {
    "index.html",
    "agents.html",
    "agents.js",
    "contacts.html",
    "contacts.js",
    "common.js",
    "wallboard.js",
    "wallboard.css",
    "labels.json",
    "fonts/ccpulse-cjk-regular.woff2",
    "fonts/ccpulse-cjk-bold.woff2",
}


def asset(name: str) -> tuple[bytes, str] | None:
    """An asset's bytes and content type; None for anything not on the list."""
    if name not in ASSETS:
        return None
    path = HERE / name
    return path.read_bytes(), TYPES[path.suffix]
