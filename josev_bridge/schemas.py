"""JSON Schemas of every message, loaded once, compiled into validators once (the edge of the system).

The schema files live in the repository's `schemas/` and are installed as the package
`josev_bridge.schemas`. Validators are built at start-up: building one per message costs far more than using one.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

_PACKAGE = "josev_bridge.schema_files"


class FormatCheckingUnavailable(RuntimeError):
    """`format` keywords would silently pass: rfc3339-validator (or the checker) is missing."""


@cache
def _registry() -> tuple[Registry, dict[str, dict]]:
    by_file: dict[str, dict] = {}
    registry: Registry = Registry()
    for entry in resources.files(_PACKAGE).iterdir():
        if entry.name.endswith(".schema.json"):
            schema = json.loads(entry.read_text(encoding="utf-8"))
            Draft202012Validator.check_schema(schema)
            by_file[entry.name.removesuffix(".schema.json")] = schema
            registry = registry.with_resource(schema["$id"], Resource.from_contents(schema))
    return registry, by_file


def schema_names() -> list[str]:
    return sorted(_registry()[1])


def schema(name: str) -> dict:
    """The schema `schemas/<name>.schema.json` as a dict."""
    return _registry()[1][name]


def validator(name: str) -> Draft202012Validator:
    """A compiled validator, with format checking on, for `schemas/<name>.schema.json`."""
    registry, by_file = _registry()
    return Draft202012Validator(by_file[name], registry=registry,
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def assert_format_checking() -> None:
    """Fail start-up if `date-time` or `uuid` formats would not be checked."""
    checker = Draft202012Validator.FORMAT_CHECKER
    for fmt, bad in (("date-time", "2026-02-17 10:20:30"), ("uuid", "not-a-uuid")):
        if checker.conforms(bad, fmt):
            raise FormatCheckingUnavailable(
                f"JSON Schema format {fmt!r} is not checked; install rfc3339-validator (a dependency of josev-bridge)")


def first_error(v: Draft202012Validator, instance: object) -> str | None:
    """A one-line description of the most relevant violation, or None if valid."""
    from jsonschema.exceptions import best_match

    error: ValidationError | None = best_match(v.iter_errors(instance))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"{where}: {error.message}"
