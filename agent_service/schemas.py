"""The bundled JSON Schemas: one immutable registry, validators per schema, built once.

jsonschema-rs answers "valid or not" for every request in microseconds. When a body is not
valid, the python-jsonschema reference implementation explains what is wrong (`best_match`:
the JSON path and the message clients see), but only at the first failing location, never
over the whole body: validating in Python costs about 100 µs per array item, so explaining a
large invalid body would hold the event loop for seconds. `first_problem` narrows the
failure down with jsonschema-rs first — from the root into the one `$ref`, property, item or
`allOf`/`if` branch that still fails, for as long as the node's own keywords hold — and
explains that small part alone. A part too large to hand to Python (an array over its
`maxItems`, say) is explained from its failing keyword without quoting or walking it.

Every `*.json` file in the schemas folder is a JSON Schema 2020-12 resource with an `$id` of
the form `urn:agent-service:<name>` where `<name>` is the file name without `.json`
(`agent-v1-chat.request`, `agent-v1-chat.response`, ...). Request schemas are the contract
enforced at the edge; response and chunk schemas describe what we send and are checked by
the tests (never per chunk on the hot path). Why the request schemas bound what they bound:
schemas/README.md.
"""

from __future__ import annotations

import functools
import logging
import re
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

# A place in a JSON value: the keys and indexes that lead to it.
JsonPath = list[str | int]


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
    """All bundled schemas, checked once, with a compiled validator per schema name (and
    per subschema, compiled when a failure is first narrowed through it)."""

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
        self._fast_registry = jsonschema_rs.Registry([(d["$id"], d) for d in documents.values()])
        # Compiled on first use, by absolute location (`urn:agent-service:<name>#/pointer`).
        self._fast: dict[str, jsonschema_rs.Validator] = {}
        self._own_keywords: dict[str, list[tuple[str, jsonschema_rs.Validator]]] = {}
        self._python: dict[str, Draft202012Validator] = {}
        for name in documents:
            self._fast_at(_root(name))

    @classmethod
    def load(cls, folder: Path | None = None) -> SchemaSet:
        folder = folder or schemas_dir()
        documents = {
            path.stem: orjson.loads(path.read_bytes()) for path in sorted(folder.glob("*.json"))
        }
        return cls(documents)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._documents)

    def document(self, name: str) -> dict[str, Any]:
        return self._documents[name]

    def first_problem(self, name: str, instance: object) -> SchemaProblem | None:
        """What is wrong with `instance` against schema `name`, explained at the first
        failing location; None when it is valid."""
        if self._fast_at(_root(name)).is_valid(instance):
            return None
        where, part, path = self._narrow(_root(name), instance)
        if _small(part):
            problem = self._explain(where, part, path)
            if problem is not None:
                return problem
            log.warning(
                "Schema %s: jsonschema-rs and jsonschema disagree at %s", name, json_path(path)
            )
        return self._summarise(where, part, path)

    # --- narrowing ----------------------------------------------------------------------

    def _narrow(self, where: str, instance: object) -> tuple[str, object, JsonPath]:
        """Follow the failure from the schema at `where` into the part of `instance` that
        still fails, for as long as each node's own keywords hold."""
        path: JsonPath = []
        while self._failing_own_keyword(where, instance) is None:
            step = self._failing_part(where, instance)
            if step is None:
                break
            where, instance, key = step
            if key is not None:
                path.append(key)
        return where, instance, path

    def _failing_part(
        self, where: str, instance: object
    ) -> tuple[str, object, str | int | None] | None:
        node = self._node(where)
        if not isinstance(node, dict):
            return None
        if isinstance(node.get("$ref"), str):
            target = _join(where, node["$ref"])
            if not self._valid(target, instance):
                return target, instance, None
        if isinstance(instance, dict):
            declared = node.get("properties")
            declared = declared if isinstance(declared, dict) else {}
            for key in declared:
                sub = f"{where}/properties/{_escape(key)}"
                if key in instance and not self._valid(sub, instance[key]):
                    return sub, instance[key], key
            if isinstance(node.get("additionalProperties"), dict):
                sub = f"{where}/additionalProperties"
                for key, value in instance.items():
                    if key not in declared and not self._valid(sub, value):
                        return sub, value, key
        if isinstance(instance, list) and isinstance(node.get("items"), dict):
            sub = f"{where}/items"
            for index, item in enumerate(instance):
                if not self._valid(sub, item):
                    return sub, item, index
        for index in range(len(node.get("allOf") or ())):
            sub = f"{where}/allOf/{index}"
            if not self._valid(sub, instance):
                return sub, instance, None
        if "if" in node:
            branch = "then" if self._valid(f"{where}/if", instance) else "else"
            sub = f"{where}/{branch}"
            if branch in node and not self._valid(sub, instance):
                return sub, instance, None
        return None

    def _failing_own_keyword(self, where: str, instance: object) -> str | None:
        """The first of the node's own keywords (those that look at the value itself, not
        into its parts) that `instance` breaks."""
        checks = self._own_keywords.get(where)
        if checks is None:
            checks = self._own_keywords[where] = _own_keyword_checks(self._node(where))
        for keyword, check in checks:
            if not check.is_valid(instance):
                return keyword
        return None

    def _valid(self, where: str, instance: object) -> bool:
        return self._fast_at(where).is_valid(instance)

    def _fast_at(self, where: str) -> jsonschema_rs.Validator:
        validator = self._fast.get(where)
        if validator is None:
            validator = self._fast[where] = jsonschema_rs.validator_for(
                {"$ref": where}, registry=self._fast_registry
            )
        return validator

    def _node(self, where: str) -> Any:
        """The schema node at an absolute `urn:agent-service:<name>#/pointer`."""
        uri, _, pointer = where.partition("#")
        node: Any = self._documents[uri.removeprefix(URN_PREFIX)]
        for token in pointer.split("/")[1:]:
            token = token.replace("~1", "/").replace("~0", "~")
            node = node[int(token)] if isinstance(node, list) else node[token]
        return node

    # --- explaining ---------------------------------------------------------------------

    def _explain(self, where: str, part: object, path: JsonPath) -> SchemaProblem | None:
        """python-jsonschema's best match for the (small) failing part."""
        python = self._python.get(where)
        if python is None:
            python = self._python[where] = Draft202012Validator(
                {"$ref": where}, registry=self.registry
            )
        error = best_match(python.iter_errors(part))
        if error is None:
            return None
        full = json_path([*path, *error.absolute_path])
        return SchemaProblem(
            json_path=full,
            message=_describe(error, full),
            code=_CODES.get(str(error.validator), "invalid_value"),
        )

    def _summarise(self, where: str, part: object, path: JsonPath) -> SchemaProblem:
        """The failure at `where` from its failing keyword, without handing `part` to
        Python: it is too large to quote, or to walk, on the event loop."""
        node = self._node(where)
        node = node if isinstance(node, dict) else {}
        keyword = self._failing_own_keyword(where, part) or next(
            (key for key in _COMBINATORS if key in node), None
        )
        if keyword is None or (keyword in _COMBINATORS and node.get("description")):
            text = str(node.get("description") or "is not valid here")
        elif keyword == "required" and isinstance(part, dict):
            missing = [key for key in node["required"] if key not in part]
            text = f"{missing[0]!r} is a required property" if missing else "is incomplete"
        else:
            text = _SUMMARIES.get(keyword, "is not valid ({keyword})").format(
                keyword=keyword, limit=node.get(keyword)
            )
        where_text = json_path(path)
        return SchemaProblem(
            json_path=where_text,
            message=f"{_subject(where_text)}: {text}",
            code=_CODES.get(keyword or "", "invalid_value"),
        )


def _root(name: str) -> str:
    return f"{URN_PREFIX}{name}#"


def _join(where: str, reference: str) -> str:
    """`reference` (a `$ref`) resolved against the location it appears at."""
    if reference.startswith("#"):
        return where.partition("#")[0] + reference
    return reference if "#" in reference else reference + "#"


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


# The keywords that look at a value itself rather than into its parts, in the order they are
# checked (the first that fails is the one reported).
_OWN_KEYWORDS = (
    "type",
    "const",
    "enum",
    "required",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "dependentRequired",
    "uniqueItems",
)
_COMBINATORS = ("anyOf", "oneOf", "not")


def _own_keyword_checks(node: Any) -> list[tuple[str, jsonschema_rs.Validator]]:
    if not isinstance(node, dict):
        return []
    checks = [
        (keyword, jsonschema_rs.validator_for({keyword: node[keyword]}))
        for keyword in _OWN_KEYWORDS
        if keyword in node
    ]
    if node.get("additionalProperties") is False:
        closed = {
            "additionalProperties": False,
            "properties": dict.fromkeys(node.get("properties") or {}, True),
            "patternProperties": dict.fromkeys(node.get("patternProperties") or {}, True),
        }
        checks.append(("additionalProperties", jsonschema_rs.validator_for(closed)))
    return checks


# Python explains a part when it has at most this many values (a string counts one per
# this many characters): about a millisecond of best_match, and a short repr.
_SMALL_PART = 2000
_CHARACTERS_PER_VALUE = 64


def _small(value: object) -> bool:
    budget = _SMALL_PART
    pending = [value]
    while pending:
        item = pending.pop()
        budget -= 1
        if isinstance(item, dict):
            pending.extend(item.values())
            budget -= len(item)
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            budget -= len(item) // _CHARACTERS_PER_VALUE
        if budget < 0:
            return False
    return True


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def json_path(path: JsonPath) -> str:
    """`$.messages[0].content`; a key that is not a plain name is quoted as JSON
    (`$["a\\nb"]`), so a client's key can never break a log line or read as another path."""
    parts = ["$"]
    for step in path:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif _IDENTIFIER.match(step):
            parts.append(f".{step}")
        else:
            parts.append(f"[{orjson.dumps(step).decode()}]")
    return "".join(parts)


_CODES = {"required": "missing_required_parameter", "type": "invalid_type"}


def _subject(where: str) -> str:
    return "the request body" if where == "$" else where


def _describe(error: ValidationError, where: str) -> str:
    """A message naming the field and the problem, without echoing huge values back."""
    subject = _subject(where)
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    if error.validator in {"oneOf", "anyOf", "not", "if", "then", "else"} and description:
        # jsonschema's own message for these repeats the whole instance and says little.
        return f"{subject}: {description}"
    message = error.message
    if len(message) > _MAX_MESSAGE:
        # Either the offending value is long (say it without quoting it) or the list of what
        # is allowed is (keep its beginning).
        quoted_value_is_long = len(repr(error.instance)) > _MAX_QUOTED_VALUE
        message = (
            _SUMMARIES.get(str(error.validator), "is not valid ({keyword})").format(
                keyword=error.validator, limit=error.validator_value
            )
            if quoted_value_is_long
            else message[: _MAX_MESSAGE - 1] + "…"
        )
    return f"{subject}: {message}"


# Client-facing messages stay short enough to read in a log line or an SDK exception.
_MAX_MESSAGE = 200
_MAX_QUOTED_VALUE = 60

_SUMMARIES = {
    "maxLength": "is too long (at most {limit} characters)",
    "minLength": "is too short (at least {limit} characters)",
    "maxItems": "has too many items (at most {limit})",
    "minItems": "has too few items (at least {limit})",
    "maxProperties": "has too many properties (at most {limit})",
    "minProperties": "has too few properties (at least {limit})",
    "type": "is not of type {limit!r}",
    "pattern": "does not match {limit!r}",
    "enum": "is not one of the allowed values",
    "const": "is not the allowed value",
    "additionalProperties": "has properties that are not allowed here",
}


@functools.cache
def bundled() -> SchemaSet:
    """The schema set shipped with the package, loaded and checked on first use."""
    return SchemaSet.load()
