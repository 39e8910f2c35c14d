"""The reference verdict: the JSON Schemas in schemas/v1 applied by the `jsonschema` library.

Independent of pipeline.core.contract on purpose (the code under test): the JSON reading rules
of the contract are restated here from EVENTS.md: at most 64 KiB; UTF-8; RFC 8259 JSON (no
NaN/Infinity literals, no lone surrogates); when a key repeats, the last one wins.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas" / "v1"
EXAMPLES = Path(__file__).resolve().parents[1] / "schemas" / "examples" / "v1"


@cache
def validator() -> Draft202012Validator:
    resources = []
    for path in SCHEMAS.glob("*.schema.json"):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
    registry = Registry().with_resources(resources)
    event = json.loads((SCHEMAS / "event.schema.json").read_text())
    checker = Draft202012Validator.FORMAT_CHECKER
    # jsonschema checks `date-time` only when rfc3339-validator is installed: without it the
    # reference would silently accept February 30th.
    if checker.conforms("2026-02-30T00:00:00Z", "date-time"):
        raise RuntimeError("jsonschema cannot check date-time: install jsonschema[format-nongpl]")
    return Draft202012Validator(event, registry=registry, format_checker=checker)


def _no_constants(name: str) -> Any:
    raise ValueError(name)


def reference_parse(raw: bytes) -> tuple[bool, Any]:
    if len(raw) > 64 * 1024:
        return False, "too_large"
    try:
        text = raw.decode("utf-8")
        value = json.loads(text, parse_constant=_no_constants)
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError, UnicodeError):
        return False, "invalid_json"
    return True, value


def reference_valid(raw: bytes) -> bool:
    parsed, value = reference_parse(raw)
    return parsed and validator().is_valid(value)
