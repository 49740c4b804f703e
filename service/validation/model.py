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

    def admits(self, count: int) -> bool:
        """Whether `count` occurrences meet `min` and `max` (the walker words an issue only when not)."""
        return (self.min is None or count >= self.min) and (self.max is None or count <= self.max)

    @cached_property
    def checks_value(self) -> bool:
        """Whether a value of the element is checked at all (beyond its cardinality)."""
        return bool(
            self.fixed is not None
            or self.pattern is not None
            or self.regex is not None
            or self.types
            or self.binding is not None
            or self.invariants
        )

    @cached_property
    def checks_untyped_value(self) -> bool:
        """`checks_value` for a value whose JSON key names no type (not a choice element): then every type is
        allowed, so only profiles and reference targets among the types can find anything."""
        return bool(
            self.fixed is not None
            or self.pattern is not None
            or self.regex is not None
            or self.binding is not None
            or self.invariants
            or any(t.profiles or (t.code == "Reference" and t.target_profiles) for t in self.types)
        )

    @cached_property
    def type_plans(self) -> dict[str | None, TypePlan]:
        """The TypePlan for each choice type name met so far (None: not a choice), filled by `type_plan`."""
        return {}

    def type_plan(self, type_name: str | None) -> TypePlan:
        """What `types` asks of a value given as `type_name` (computed once per rule and name)."""
        plan = self.type_plans.get(type_name)
        if plan is None:
            allowed = tuple(t for t in self.types if type_name is None or t.code == type_name)
            plan = TypePlan(
                allowed=allowed,
                targets=tuple(url for t in allowed if t.code == "Reference" for url in t.target_profiles),
                profiled=tuple(t for t in allowed if t.profiles),
            )
            self.type_plans[type_name] = plan
        return plan


@dataclass(frozen=True)
class TypePlan:
    """The types of an element a value may have (`allowed`), the target profiles of its Reference types, and the
    allowed types that name profiles."""

    allowed: tuple[TypeRule, ...]
    targets: tuple[str, ...]
    profiled: tuple[TypeRule, ...]


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


@dataclass(frozen=True)
class SliceLookup:
    """See `Node.slice_lookup`: `by_type` says the strings are resource types of the value at `path`, else the
    value at `path` itself."""

    by_type: bool
    path: tuple[str, ...]
    slices: dict[str, Slice]


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

    @cached_property
    def plan(self) -> tuple[tuple[str | None, Node], ...]:
        """The children in order, each with the JSON name whose absence means there is nothing to check (None:
        always checked: sliced, a choice, or required). Computed on first use, once the profile is loaded."""
        return tuple((None if child.always_checked else child.name, child) for child in self.children.values())

    @cached_property
    def slice_lookup(self) -> SliceLookup | None:
        """When every slice has one discriminator, all of one kind ("type" or a fixed string) on one path: the first
        slice for each discriminating string, so a member's slice is found by one lookup instead of trying each."""
        slices = list(self.slices.values())
        if not slices or any(len(s.discriminators) != 1 for s in slices):
            return None
        first = slices[0].discriminators[0]
        if first.kind not in ("type", "fixed") or any(
            s.discriminators[0].kind != first.kind
            or s.discriminators[0].path != first.path
            or type(s.discriminators[0].value) is not str
            for s in slices
        ):
            return None
        chosen: dict[str, Slice] = {}
        for slice_ in slices:
            chosen.setdefault(slice_.discriminators[0].value, slice_)
        return SliceLookup(first.kind == "type", first.path, chosen)

    @cached_property
    def always_checked(self) -> bool:
        """Whether the element is checked even when absent: it is sliced, a choice, or required."""
        return bool(self.slices or self.is_choice or (self.rule is not None and self.rule.min))

    @cached_property
    def inert(self) -> bool:
        """Whether applying the node to a value can find nothing: no value checks and no children."""
        if self.children or self.rule is None:
            return not self.children
        return not (self.rule.checks_value if self.is_choice else self.rule.checks_untyped_value)


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
