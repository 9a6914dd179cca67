"""Our Responses answers checked against the Open Responses output contract
(tests/contracts/open-responses.output.json): every body and every stream event."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import orjson

CONTRACT = Path(__file__).parent / "contracts" / "open-responses.output.json"


@functools.cache
def _validator(definition: str) -> jsonschema.Draft202012Validator:
    document = orjson.loads(CONTRACT.read_bytes())
    schema = {**document, "$ref": f"#/$defs/{definition}"}
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _problems(definition: str, instance: object) -> list[str]:
    return [
        f"{error.json_path}: {error.message}"
        for error in _validator(definition).iter_errors(instance)
    ]


def check_open_responses_body(body: dict[str, Any]) -> None:
    problems = _problems("response", body)
    assert not problems, f"not an Open Responses response object: {problems}"


def check_open_responses_event(event: dict[str, Any]) -> None:
    problems = _problems("event", event)
    assert not problems, f"not an Open Responses stream event ({event.get('type')}): {problems}"
