"""Bodies checked against the JSON Schemas the OpenAPI document publishes (issue #19: one
description of a body, read by the clients and by the server alike).

`BodySchema` compiles a schema once (Draft 2020-12, the dialect of OpenAPI 3.1) and answers
a body's first error as InvalidRequest (400) with the message the schema names for it:

- `x-message` on a subschema: the message for a failure of any of its keywords (a string),
  or one message per keyword (a mapping). Validators ignore keywords they do not know, so
  the published schema carries the server's messages along. `{name}` in a message is the
  offending key: the unknown one (`additionalProperties`) or the missing one (`required`).
- Which error, when a body has several: the one of the first top-level key in the order of
  the schema's `properties` (unknown keys come before them all, a missing key in its own
  turn); inside an object the body's key order (criteria are checked key by key); then the
  schema's own order (keywords as written, `allOf` members in turn), lists by index.
- `content_checks`: what JSON Schema cannot say (a NUL anywhere in a JSON value, integers
  beyond 64 bits, what a value becomes once stored); a field's check runs in its turn, once
  the field has a value of the right type, before the field's other schema errors.
"""
from __future__ import annotations

import functools
import re
from typing import Any
from collections.abc import Callable, Iterator, Mapping

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

from ..errors import InvalidRequest


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    """`pattern` as JSON Schema reads it (ECMA 262): `$` is the end of the string. Python's re,
    which jsonschema uses as it is, also matches `$` before a final newline: `^[a-z]+$`
    would take "job\\n"."""
    if validator.is_type(instance, "string") and not _compiled(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    """The pattern with its final `$` as `\\Z` (the patterns of paddles' schemas use `$` at
    their end only; schemas.common says how they are written for both dialects)."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + "\\Z"
    return re.compile(pattern)


Validator = validators.extend(Draft202012Validator, {"pattern": _pattern})

# applicators whose value is a map of subschemas, a list of them, or one subschema
_MAPS = frozenset({"properties", "patternProperties", "dependentSchemas", "$defs"})
_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_ONE = frozenset({"not", "items", "if", "then", "else", "contains", "additionalProperties",
                  "propertyNames", "unevaluatedItems", "unevaluatedProperties"})


class BodySchema:
    """A request body's published schema, compiled once."""

    def __init__(self, schema: Mapping[str, Any],
                 content_checks: Mapping[str, Callable[[Any], object]] | None = None) -> None:
        self.schema = schema
        self.validator = Validator(schema)
        self.fields = list(schema.get("properties", {}))
        self.content_checks = dict(content_checks or {})

    def check(self, body: dict[str, Any]) -> None:
        """Raise InvalidRequest for the first of the body's errors (see the module's doc)."""
        errors = list(self.validator.iter_errors(body))
        if not errors and not self.content_checks:
            return
        turns: dict[int, list[tuple[tuple, ValidationError]]] = {}
        for error in errors:
            turn, order = self._order(body, error)
            turns.setdefault(turn, []).append((order, error))
        for turn in sorted({*turns, *range(len(self.fields))}):
            found = [error for _, error in sorted(turns.get(turn, ()), key=lambda p: p[0])]
            key = self.fields[turn] if 0 <= turn < len(self.fields) else ""
            check = self.content_checks.get(key)
            if found and (check is None or _is_type_error(found[0], key)):
                raise InvalidRequest(self.message(body, found[0]))
            if check is not None and body.get(key) is not None:
                check(body[key])
            if found:
                raise InvalidRequest(self.message(body, found[0]))

    def _order(self, body: dict[str, Any], error: ValidationError) -> tuple[int, tuple]:
        """(the top-level key's turn, the order within it) of an error."""
        path = list(error.path)
        if not path:
            if error.validator == "additionalProperties":
                return -1, ()
            if error.validator == "required":
                path = [_missing(error)]
            else:
                return len(self.fields), tuple(_schema_order(self.schema, error)[0])
        key = str(path[0])
        turn = self.fields.index(key) if key in self.fields else len(self.fields)
        within: list[int] = []
        value = body.get(key)
        if isinstance(value, dict):  # keys in the body's order
            if len(path) > 1:
                within.append(list(value).index(path[1]))
            elif error.validator == "additionalProperties":
                within.append(list(value).index(_unknown(error)[0]))
            else:
                within.append(-1)
        order = _schema_order(self.schema, error)[0]
        indexes = [step for step in path if isinstance(step, int)]
        return turn, (*within, *order, *indexes)

    def message(self, body: dict[str, Any], error: ValidationError) -> str:
        text = _schema_order(self.schema, error)[1]
        if text is None:  # a schema without a message for this keyword: a bug, not a 400
            raise LookupError(f"no x-message for {list(error.absolute_schema_path)}")
        if "{name}" not in text:
            return text
        if error.validator == "additionalProperties":
            extras = _unknown(error)
            # the top level names the first unknown key alphabetically, an object checked
            # key by key (criteria) the first in the body
            name = min(extras) if not error.path else extras[0]
        elif error.validator == "required":
            name = _missing(error)
        else:
            name = str(error.instance)
        return text.replace("{name}", name)


def _is_type_error(error: ValidationError, key: str) -> bool:
    return error.validator == "type" and list(error.path) == [key]


def _missing(error: ValidationError) -> str:
    """The first key a `required` error finds missing."""
    instance: Any = error.instance
    required: Any = error.validator_value
    return next(key for key in required if key not in instance)


def _unknown(error: ValidationError) -> list[str]:
    """The keys an `additionalProperties: false` error refuses, in the body's order."""
    instance: Any = error.instance
    schema: Any = error.schema
    known = schema.get("properties", {})
    return [key for key in instance if key not in known]


def _schema_order(schema: Mapping[str, Any],
                  error: ValidationError) -> tuple[list[int], str | None]:
    """The failing keyword's position in the schema (keys as written, list indexes), and the
    message of the innermost subschema on the way that names one for it."""
    steps = list(error.absolute_schema_path)
    node: Any = schema
    order: list[int] = []
    message = None
    i = 0
    while i < len(steps) and isinstance(node, Mapping):
        keyword = steps[i]
        if keyword == "if" and i + 1 < len(steps) and steps[i + 1] in ("then", "else"):
            i += 1  # jsonschema files `then` and `else` errors under `if`
            keyword = steps[i]
        order.append(list(node).index(keyword))
        named = node.get("x-message")
        if isinstance(named, str):
            message = named
        elif isinstance(named, Mapping) and keyword in named:
            message = named[keyword]
        child = node[keyword]
        if (keyword in _MAPS or keyword in _LISTS) and i + 1 < len(steps):
            member = steps[i + 1]
            order.append(list(child).index(member) if keyword in _MAPS else int(member))
            node, i = child[member], i + 2
        elif keyword in _ONE:
            node, i = child, i + 1
        else:
            break
    return order, message


# keywords that fail as a whole (their error is theirs, whatever failed inside), and those
# whose errors come from the subschemas they apply
_FAIL_HERE = frozenset({"type", "enum", "const", "minLength", "maxLength", "pattern",
                        "minItems", "maxItems", "uniqueItems", "contains", "minimum", "maximum",
                        "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "required",
                        "dependentRequired", "minProperties", "maxProperties", "anyOf",
                        "oneOf", "not"})


def missing_messages(schema: Any, where: str = "", inherited: bool = False) -> list[str]:
    """Where a keyword that can fail has no message (a test keeps this empty)."""
    if not isinstance(schema, Mapping):
        return []
    out: list[str] = []
    named = schema.get("x-message")
    for keyword, value in schema.items():
        has = inherited or isinstance(named, str) or (
            isinstance(named, Mapping) and keyword in named)
        if keyword in _FAIL_HERE or (keyword == "additionalProperties" and value is False):
            if not has:
                out.append(f"{where}/{keyword}")
        elif keyword in _MAPS:
            for name, sub in value.items():
                out += missing_messages(sub, f"{where}/{keyword}/{name}", has)
        elif keyword in _LISTS:
            for index, sub in enumerate(value):
                out += missing_messages(sub, f"{where}/{keyword}/{index}", has)
        elif keyword in _ONE and keyword != "if":
            out += missing_messages(value, f"{where}/{keyword}", has)
    return out
