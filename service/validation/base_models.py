"""A fast, conservative stand-in for the fhir.resources R4B parse of a message Bundle (issue 12).

`surely_valid(doc)` answers True only for a document it fully understands and finds valid against the base R4B
models: every key the JSON name of an element of its model, every value of the element's shape (one or a non-empty
list), every primitive of a form the model accepts, every required element present, no choice element given twice.
Anything it does not model (a primitive extension `_x`, `fhir_comments`, a partial date, an empty object, a type
whose form it does not check, such as decimals) makes it answer False, and the caller parses with fhir.resources,
which then decides and words the errors. So it may only ever be stricter than fhir.resources, never laxer:
tests/validation/test_base_models.py holds it to that on thousands of mutated messages and every example.

The element tables are read from the fhir.resources models themselves (aliases, list or single, required, choice
groups, the primitive type of each element), once per model, so the two cannot drift apart by hand.
"""

from __future__ import annotations

import base64
import binascii
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any, NamedTuple

import fhir_core.types as fhir_types
from fhir.resources.R4B import get_fhir_model_class
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from pydantic._internal._validators import import_string

Check = Callable[[Any], bool]

MAX_STRING = 1024 * 1024
_STRING = re.compile(r"[ \r\n\t\S]+")
_CODE = re.compile(r"[^\s]+(\s[^\s]+)*")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_URI = re.compile(r"\S+")
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)")
_FULL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Date, time to the second with at most six fraction digits, and a zone: the common form of dateTime and instant.
_FULL_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
    r"(Z|[+\-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
)


def _matching(pattern: re.Pattern[str]) -> Check:
    def check(value: Any) -> bool:
        return type(value) is str and len(value) <= MAX_STRING and pattern.fullmatch(value) is not None

    return check


_string = _matching(_STRING)


def _date(value: Any) -> bool:
    if type(value) is not str or not _FULL_DATE.fullmatch(value) or not fhir_types.Date.pattern.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _date_time(pattern: re.Pattern[str]) -> Check:
    def check(value: Any) -> bool:
        return type(value) is str and parse_date_time(value, pattern) is not None

    return check


def _date_or(check: Check) -> Check:
    """dateTime: a full date, or what `check` accepts (partial dates are not modelled)."""
    return lambda value: _date(value) or check(value)


def parse_date_time(value: str, pattern: re.Pattern[str] | None = None) -> datetime | None:
    """`value` as an aware datetime if it is a full date-time with a zone (and matches `pattern`), else None."""
    if not _FULL_DATE_TIME.fullmatch(value) or (pattern is not None and not pattern.fullmatch(value)):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _base64(value: Any) -> bool:
    """Canonical base64 only (RFC 4648 alphabet, padded, no whitespace): what pydantic's decoder surely reads."""
    if type(value) is not str or not _BASE64.fullmatch(value):
        return False
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error:
        return False
    return True


def _boolean(value: Any) -> bool:
    return type(value) is bool


def _integer(low: int) -> Check:
    def check(value: Any) -> bool:
        return type(value) is int and low <= value <= 2**31 - 1

    return check


# The primitive types checked here, by the marker fhir.resources puts in the element's annotation.
_PRIMITIVES: dict[type, Check] = {
    fhir_types.String: _string,
    fhir_types.Markdown: _string,
    fhir_types.Xhtml: _string,
    fhir_types.Code: _matching(_CODE),
    fhir_types.Id: _matching(_ID),
    fhir_types.Uri: _matching(_URI),
    fhir_types.Canonical: _matching(_URI),
    fhir_types.Url: _matching(_URI),
    fhir_types.Base64Binary: _base64,
    fhir_types.Date: _date,
    fhir_types.DateTime: _date_or(_date_time(fhir_types.DateTime.pattern)),
    fhir_types.Instant: _date_time(fhir_types.Instant.pattern),
    fhir_types.Integer: _integer(-(2**31)),
    fhir_types.UnsignedInt: _integer(0),
    fhir_types.PositiveInt: _integer(1),
}


class _Element(NamedTuple):
    many: bool
    check: Check


@dataclass(frozen=True)
class _Model:
    resource_type: str | None
    elements: dict[str, _Element]
    required: frozenset[str]
    choices: tuple[tuple[tuple[str, ...], bool], ...]


def surely_valid(doc: Any) -> bool:
    """True only if fhir.resources would accept `doc` as an R4B Bundle (see the module's docstring); False means
    "not known here", never "invalid"."""
    return _resource(doc, "Bundle")


def _never(_value: Any) -> bool:
    return False


def _resource(value: Any, expected: str | None = None) -> bool:
    if type(value) is not dict:
        return False
    kind = value.get("resourceType")
    if type(kind) is not str or (expected is not None and kind != expected):
        return False
    model = _model_of_resource(kind)
    return model is not None and _element(value, model)


def _element(value: Any, model: _Model) -> bool:
    """Every member known to the model and of its form, the required ones present, at most one of each choice.
    One loop, not a generator of calls: this runs for every element of every message."""
    if type(value) is not dict or not value:
        return False
    elements = model.elements
    for key, item in value.items():
        element = elements.get(key)
        if element is None:
            if key == "resourceType" and model.resource_type is not None:
                continue
            return False
        many, check = element
        if not many:
            if not check(item):
                return False
        elif type(item) is not list or not item or not all(map(check, item)):
            return False
    return (not model.required or value.keys() >= model.required) and (
        not model.choices or all(_one_choice(value, names, required) for names, required in model.choices)
    )


def _one_choice(value: dict[str, Any], names: tuple[str, ...], required: bool) -> bool:
    given = sum(name in value for name in names)
    return given <= 1 and (given == 1 or not required)


@cache
def _model_of_resource(kind: str) -> _Model | None:
    try:
        cls = get_fhir_model_class(kind)
    except (ValueError, KeyError):
        return None
    if not cls.has_resource_base() or cls.get_resource_type() != kind:
        return None
    return _model_of(cls)


@cache
def _model_of(cls: type[FHIRAbstractModel]) -> _Model:
    """The element table of one fhir.resources model class."""
    elements: dict[str, _Element] = {}
    python_to_alias: dict[str, str] = {}
    required: list[str] = []
    for name, field in cls.model_fields.items():
        alias = field.alias or name
        python_to_alias[name] = alias
        if name == "fhir_comments" or name.endswith("__ext"):
            continue  # not modelled: a document using them is parsed by fhir.resources
        if alias == "resourceType":
            continue  # checked by _element itself, as the model's resource_type
        many, check = _element_check(field.annotation)
        elements[alias] = _Element(many, check)
        if field.is_required():
            required.append(alias)
    sample = cls.model_construct()
    required += [python_to_alias[name] for name, _ in sample.get_required_fields()]
    choices = tuple(
        (tuple(python_to_alias[name] for name in names), _choice_required(cls, names[0]))
        for names in sample.get_one_of_many_fields().values()
    )
    resource_type = cls.get_resource_type() if cls.has_resource_base() else None
    return _Model(resource_type, elements, frozenset(required), choices)


def _choice_required(cls: type[FHIRAbstractModel], name: str) -> bool:
    extra = cls.model_fields[name].json_schema_extra
    return isinstance(extra, dict) and extra.get("one_of_many_required") is True


def _element_check(annotation: Any) -> tuple[bool, Check]:
    """(a list?, the check of one item) for an element's annotation; `_never` for what is not modelled."""
    inner = _without_none(annotation)
    many = typing.get_origin(inner) in (list, typing.List)  # noqa: UP006 - both spellings occur
    if many:
        (inner,) = typing.get_args(inner)
        inner = _without_none(inner)
    return many, _item_check(inner)


def _without_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(options) == 1:
            return options[0]
    return annotation


def _item_check(annotation: Any) -> Check:
    if annotation is bool:
        return _boolean
    if typing.get_origin(annotation) is typing.Annotated:
        markers = typing.get_args(annotation)[1:]
        checks = [_PRIMITIVES[type(marker)] for marker in markers if type(marker) in _PRIMITIVES]
        return checks[0] if len(checks) == 1 else _never
    klass = getattr(annotation, "_model_klass", None)
    if not (isinstance(annotation, type) and issubclass(annotation, fhir_types.FhirBase) and isinstance(klass, str)):
        return _never
    return _complex_check(import_string(klass))


def _complex_check(target: Any) -> Check:
    if target.__name__ == "Resource":
        return _resource  # any resource, by its own resourceType (Bundle.entry.resource, contained)
    if not issubclass(target, FHIRAbstractModel) or target.has_resource_base():
        return _never
    known: list[_Model] = []  # the target's table, read on first use (types refer to themselves, e.g. Extension)

    def check(value: Any) -> bool:
        if not known:
            known.append(_model_of(target))
        return _element(value, known[0])

    return check
