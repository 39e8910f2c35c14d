"""Every example in schemas/examples is valid for the JSON Schemas and for the worker's own
validation, and normalises to the type its folder names; the schemas themselves are valid
draft 2020-12 and use the same patterns as the code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from pipeline.core import contract
from tests.schema_reference import EXAMPLES, SCHEMAS, reference_valid

EXAMPLE_FILES = sorted(EXAMPLES.glob("*/*.json"))


def test_there_is_an_example_of_every_type() -> None:
    assert {path.parent.name for path in EXAMPLE_FILES} == set(contract.EVENT_TYPES)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_example(path: Path) -> None:
    raw = path.read_bytes().strip()
    assert reference_valid(raw)
    verdict = contract.check(raw)
    assert verdict.valid, verdict.detail
    assert verdict.event is not None and verdict.event.type == path.parent.name


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.schema.json")), ids=lambda p: p.name)
def test_schema_is_valid_draft_2020_12(path: Path) -> None:
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schemas_and_code_share_patterns_and_enumerations() -> None:
    envelope = json.loads((SCHEMAS / "envelope.schema.json").read_text())
    assert envelope["$defs"]["queue"]["pattern"] == contract.QUEUE_PATTERN
    assert envelope["$defs"]["timestamp"]["pattern"] == contract.TIMESTAMP_PATTERN
    assert envelope["$defs"]["channel"]["enum"] == list(contract.CHANNELS)
    assert envelope["properties"]["type"]["enum"] == list(contract.EVENT_TYPES)
    agent = json.loads((SCHEMAS / "agent.state_changed.schema.json").read_text())
    assert agent["properties"]["state"]["enum"] == list(contract.AGENT_STATES)
