"""The compiled form of the conformance resources: what the walker applies, built once by the loader.

A `Profile` is a tree of `Node`s, one per element named in a StructureDefinition's differential (slices hang
under the element they slice). Nothing here knows a message type: every rule is data read from fhir_profiles/.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from service.validation.fhirpath import Invariant

# FHIR primitive type names, as they appear (with a capital) in choice-element JSON keys such as valueDate.
PRIMITIVE_TYPES = frozenset(
    {
        "base64Binary",
        "boolean",
        "canonical",
        "code",
        "date",
        "dateTime",
        "decimal",
        "id",
        "instant",
        "integer",
        "markdown",
        "oid",
        "positiveInt",
        "string",
        "time",
        "unsignedInt",
        "uri",
        "url",
        "uuid",
    }
)


@dataclass(frozen=True)
class TypeRule:
    """One allowed type of an element, with the profiles its value (or, for a Reference, its target) must meet."""

    code: str
    profiles: tuple[str, ...] = ()
    target_profiles: tuple[str, ...] = ()


@dataclass(frozen=True)
class Binding:
    strength: str
    value_set: str


@dataclass(frozen=True)
class ElementRule:
    """The constraints one differential element puts on every occurrence of its element."""

    path: str
    min: int | None = None
    max: int | None = None  # None: not constrained; "*" is stored as None as well
    fixed: Any = None
    pattern: Any = None
    types: tuple[TypeRule, ...] = ()
    binding: Binding | None = None
    invariants: tuple[Invariant, ...] = ()
    short: str = ""
    regex: re.Pattern[str] | None = None  # the standard regex extension: the whole value must match


@dataclass(frozen=True)
class Discriminator:
    """How a slice recognises its members: the value at `path` equals (fixed) or contains (pattern) `value`, or,
    for kind "type", the resource at `path` has resourceType `value`."""

    kind: str
    path: tuple[str, ...]
    value: Any


@dataclass
class Slice:
    name: str
    node: Node
    discriminators: list[Discriminator] = field(default_factory=list)


@dataclass
class Node:
    """An element of a profile: its JSON name (choice elements end in [x]), its rule and its constrained children."""

    name: str
    rule: ElementRule | None = None
    children: dict[str, Node] = field(default_factory=dict)
    slices: dict[str, Slice] = field(default_factory=dict)
    slicing_rules: str | None = None  # "open" | "closed" | "openAtEnd" when the element is sliced
    discriminator_specs: list[tuple[str, str]] = field(default_factory=list)  # (type, path) from slicing

    @cached_property
    def is_choice(self) -> bool:
        return self.name.endswith("[x]")

    @cached_property
    def base_name(self) -> str:
        return self.name[:-3] if self.is_choice else self.name


@dataclass
class Profile:
    """A compiled StructureDefinition: `type` is the constrained resource or data type; `base` our parent profile."""

    url: str
    title: str
    type: str
    kind: str
    root: Node
    base: str | None = None


@dataclass(frozen=True)
class FocusRule:
    resource_type: str
    profile: str | None
    min: int
    max: int | None


@dataclass(frozen=True)
class MessageRule:
    """What a MessageDefinition says about a message with its event: allowed focus resources and their profiles."""

    url: str
    event_system: str
    event_code: str
    focus: tuple[FocusRule, ...]
    header_profile: str | None
    handover_system: str  # with handover_event: the Handover event this message is handled as (for a BaRS
    handover_event: str  # definition, its `base`'s event), else the definition's own event
