"""Device-model definitions and value rules, in OCPP 2.0.1 terms (as libocpp does them). Pure.

Values are strings, as on the wire. Validation is strict: booleans are exactly "true"/"false".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .timestamps import parse_us


class DataType(str, Enum):
    BOOLEAN = "boolean"
    INTEGER = "integer"
    DECIMAL = "decimal"
    STRING = "string"
    DATETIME = "dateTime"
    OPTION_LIST = "OptionList"
    MEMBER_LIST = "MemberList"
    SEQUENCE_LIST = "SequenceList"


class Mutability(str, Enum):
    READ_ONLY = "ReadOnly"
    WRITE_ONLY = "WriteOnly"
    READ_WRITE = "ReadWrite"


class Source(str, Enum):
    """Where a stored value came from; a default never overwrites local or csms values."""

    DEFAULT = "default"
    LOCAL = "local"
    CSMS = "csms"


@dataclass(frozen=True, slots=True)
class AttributeDef:
    type: str  # Actual | Target | MinSet | MaxSet
    mutability: Mutability
    default: str | None


@dataclass(frozen=True, slots=True)
class VariableDef:
    component: str
    name: str
    data_type: DataType
    attributes: dict[str, AttributeDef]
    description: str = ""
    unit: str | None = None
    min_limit: float | None = None
    max_limit: float | None = None
    max_length: int | None = None
    values_list: tuple[str, ...] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.component, self.name)

    def allowed(self) -> str:
        """Human words for what this variable accepts, for error messages."""
        t = self.data_type
        if t is DataType.BOOLEAN:
            return "true or false"
        if t in (DataType.OPTION_LIST,) and self.values_list:
            return "one of " + ", ".join(self.values_list)
        if t in (DataType.MEMBER_LIST, DataType.SEQUENCE_LIST) and self.values_list:
            return "a comma-separated list of " + ", ".join(self.values_list)
        if t in (DataType.INTEGER, DataType.DECIMAL):
            kind = "an integer" if t is DataType.INTEGER else "a decimal number"
            lo = "" if self.min_limit is None else f" >= {_num(self.min_limit)}"
            hi = "" if self.max_limit is None else f" <= {_num(self.max_limit)}"
            return kind + lo + ("," if lo and hi else "") + hi
        if t is DataType.DATETIME:
            return "an RFC 3339 timestamp with Z or an offset"
        return "a string" + (f" of at most {self.max_length} characters" if self.max_length else "")


class DeviceModelError(ValueError):
    """A definition, lookup or value problem, worded for a technician."""


def parse_component(doc: dict[str, Any]) -> list[VariableDef]:
    """Turn one schema-valid component document into variable definitions."""
    out = []
    for var in doc["variables"]:
        ch = var["characteristics"]
        attrs = {a["type"]: AttributeDef(a["type"], Mutability(a["mutability"]), a.get("default"))
                 for a in var["attributes"]}
        vdef = VariableDef(
            component=doc["name"], name=var["name"], data_type=DataType(ch["dataType"]), attributes=attrs,
            description=var.get("description", ""), unit=ch.get("unit"), min_limit=ch.get("minLimit"),
            max_limit=ch.get("maxLimit"), max_length=ch.get("maxLength"),
            values_list=tuple(ch["valuesList"]) if "valuesList" in ch else None)
        for attr in attrs.values():
            if attr.default is not None:
                problem = validate(vdef, attr.default)
                if problem:
                    raise DeviceModelError(f"{vdef.component}.{vdef.name} default {attr.default!r}: {problem}")
        out.append(vdef)
    return out


def validate(var: VariableDef, value: str) -> str | None:
    """None if `value` is valid for `var`, else what is wrong, naming the allowed values."""
    bad = f"{var.name} expects {var.allowed()}, got {value!r}"
    t = var.data_type
    if not isinstance(value, str):
        return bad
    if t is DataType.BOOLEAN:
        return None if value in ("true", "false") else bad
    if t in (DataType.INTEGER, DataType.DECIMAL):
        number = _parse_number(value, integer=t is DataType.INTEGER)
        if number is None:
            return bad
        if (var.min_limit is not None and number < var.min_limit) or \
                (var.max_limit is not None and number > var.max_limit):
            return bad
        return None
    if t is DataType.DATETIME:
        try:
            parse_us(value)
        except ValueError:
            return bad
        return None
    if t is DataType.OPTION_LIST:
        return None if var.values_list is None or value in var.values_list else bad
    if t in (DataType.MEMBER_LIST, DataType.SEQUENCE_LIST):
        members = value.split(",") if value else []
        if var.values_list is not None and any(m not in var.values_list for m in members):
            return bad
        if t is DataType.MEMBER_LIST and len(set(members)) != len(members):
            return f"{var.name} expects each member at most once, got {value!r}"
        return None
    if var.max_length is not None and len(value) > var.max_length:
        return bad
    return None


def _parse_number(text: str, *, integer: bool) -> float | None:
    try:
        number = int(text) if integer else float(text)
    except ValueError:
        return None
    if not integer and not math.isfinite(number):
        return None
    return number


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def as_bool(value: str | None) -> bool:
    """A missing value means off (libocpp's rule for feature flags)."""
    return value == "true"
