"""The bundled JSON Schemas: one immutable registry, validators per schema, built once.

Two validators per schema: jsonschema-rs answers "valid or not" on every request in under a
microsecond (the pure-Python validator took 20-180 µs, a sixth of a request's CPU); the
python-jsonschema reference implementation explains what is wrong when a body is not valid
(`best_match`, the JSON path). Should the two ever disagree, the reference wins.

Every `*.json` file in the schemas folder is a JSON Schema 2020-12 resource with an `$id` of
the form `urn:agent-service:<name>` where `<name>` is the file name without `.json`
(`agent-v1-chat.request`, `agent-v1-chat.response`, ...). Request schemas are the contract
enforced at the edge; response and chunk schemas describe what we send and are checked by
the tests (never per chunk on the hot path).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

URN_PREFIX = "urn:agent-service:"

log = logging.getLogger(__name__)


def schemas_dir() -> Path:
    """Where the schema files are: inside the installed package, else the repository top."""
    packaged = Path(__file__).parent / "schemas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).parent.parent / "schemas"


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    """The most relevant validation failure, in a form the error envelope can carry."""

    json_path: str
    message: str
    # An OpenAI-style error code: missing_required_parameter, invalid_type, invalid_value.
    code: str


class SchemaSet:
    """All bundled schemas, checked once, with a compiled validator per schema name."""

    def __init__(self, documents: Mapping[str, dict[str, Any]]) -> None:
        for name, document in documents.items():
            Draft202012Validator.check_schema(document)
            if document.get("$id") != URN_PREFIX + name:
                raise ValueError(f"schema {name}: $id must be {URN_PREFIX + name!r}")
        self._documents = dict(documents)
        self.registry: Registry[Any] = (
            Registry()
            .with_resources(
                (doc["$id"], Resource.from_contents(doc, default_specification=DRAFT202012))
                for doc in documents.values()
            )
            .crawl()
        )
        self._validators = {
            name: Draft202012Validator(document, registry=self.registry)
            for name, document in documents.items()
        }
        fast_registry = jsonschema_rs.Registry([(d["$id"], d) for d in documents.values()])
        self._fast = {
            name: jsonschema_rs.Draft202012Validator(document, registry=fast_registry)
            for name, document in documents.items()
        }

    @classmethod
    def load(cls, folder: Path | None = None) -> SchemaSet:
        folder = folder or schemas_dir()
        documents = {
            path.stem: orjson.loads(path.read_bytes()) for path in sorted(folder.glob("*.json"))
        }
        return cls(documents)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._validators)

    def document(self, name: str) -> dict[str, Any]:
        return self._documents[name]

    def first_problem(self, name: str, instance: object) -> SchemaProblem | None:
        """The best-matching error for `instance` against schema `name`, or None when valid."""
        if self._fast[name].is_valid(instance):
            return None
        error = best_match(self._validators[name].iter_errors(instance))
        if error is None:
            log.warning(
                "Schema %s: jsonschema-rs and jsonschema disagree; accepting the body", name
            )
            return None
        return SchemaProblem(
            json_path=error.json_path,
            message=_describe(error),
            code=_CODES.get(str(error.validator), "invalid_value"),
        )


_CODES = {"required": "missing_required_parameter", "type": "invalid_type"}


def _describe(error: ValidationError) -> str:
    """A message naming the field and the problem, without echoing huge values back."""
    where = "the request body" if error.json_path == "$" else error.json_path
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    if error.validator in {"oneOf", "anyOf", "not", "if", "then", "else"} and description:
        # jsonschema's own message for these repeats the whole instance and says little.
        return f"{where}: {description}"
    message = error.message
    if len(message) > _MAX_MESSAGE:
        # Either the offending value is long (say it without quoting it) or the list of what
        # is allowed is (keep its beginning).
        quoted_value_is_long = len(repr(error.instance)) > _MAX_QUOTED_VALUE
        message = _summary(error) if quoted_value_is_long else message[: _MAX_MESSAGE - 1] + "…"
    return f"{where}: {message}"


# Client-facing messages stay short enough to read in a log line or an SDK exception.
_MAX_MESSAGE = 200
_MAX_QUOTED_VALUE = 60


def _summary(error: ValidationError) -> str:
    limit = error.validator_value
    summaries = {
        "maxLength": f"is too long (at most {limit} characters)",
        "minLength": f"is too short (at least {limit} characters)",
        "maxItems": f"has too many items (at most {limit})",
        "minItems": f"has too few items (at least {limit})",
        "maxProperties": f"has too many properties (at most {limit})",
        "type": f"is not of type {limit!r}",
        "pattern": f"does not match {limit!r}",
    }
    return summaries.get(str(error.validator), f"is not valid ({error.validator})")


@functools.cache
def bundled() -> SchemaSet:
    """The schema set shipped with the package, loaded and checked on first use."""
    return SchemaSet.load()
