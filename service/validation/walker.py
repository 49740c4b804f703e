"""Applying a compiled profile to a resource: cardinality, fixed and pattern values, types, reference targets,
bindings, slices and FHIRPath invariants. Every problem becomes an Issue; nothing here raises on odd data.

Issue texts name elements and rules, never instance values: a profile's own fixed values and codes may be
quoted, the message's may not.
"""

from __future__ import annotations

import json
import re
from collections import deque
from typing import Any, TypeAlias

from service.errors import Code, Issue
from service.validation.bundle import BundleIndex
from service.validation.fhirpath import InvariantError
from service.validation.loader import HL7_BASE, Conformance
from service.validation.model import (
    PRIMITIVE_TYPES,
    Discriminator,
    ElementRule,
    Node,
    Profile,
    Slice,
    TypeRule,
)

_RESOURCE_TYPE_NAME = re.compile(r"[A-Z][A-Za-z]{1,40}", re.ASCII)


Expression: TypeAlias = "str | tuple[Expression, str] | tuple[Expression, str, int]"
"""Where a value is, built lazily: a FHIRPath string, or (parent, element name) or (parent, element name, list
index) appending `.name` or `.name[index]`. Most elements never need theirs written out: `render` does that only
for an issue."""


def render(expression: Expression) -> str:
    parts: list[str] = []
    while not isinstance(expression, str):
        if len(expression) == 3:
            parent, name, index = expression
            parts.append(f".{name}[{index}]")
        else:
            parent, name = expression
            parts.append(f".{name}")
        expression = parent
    return expression + "".join(reversed(parts))


Occurrence: TypeAlias = tuple[Any, Expression, "str | None"]
"""One value of an element where it occurs: (value, expression, type name). The type name is the one a choice
element's JSON key names, else None. A plain tuple: one is built for every element of every message checked."""


class Walker:
    """Checks the resources of one message against profiles. Arguments: the conformance resources, the message's
    Bundle index and the list that collects issues. Profiles reached through references are queued and applied
    by `drain`; each (resource, profile) pair is checked once."""

    def __init__(
        self,
        conformance: Conformance,
        index: BundleIndex,
        issues: list[Issue],
        targets_by_type: dict[tuple[str, ...], dict[str, list[str]]] | None = None,
    ) -> None:
        self._conformance = conformance
        self._by_type = targets_by_type if targets_by_type is not None else {}
        self._index = index
        self._issues = issues
        self._done: set[tuple[int, str]] = set()
        self._queue: deque[tuple[dict[str, Any], str, Expression]] = deque()

    def check_resource(self, resource: object, profile_url: str, expression: Expression) -> None:
        """Check `resource` (found at `expression`) against the profile and the profiles it derives from."""
        profile = self._conformance.profiles.get(profile_url)
        if profile is None or not isinstance(resource, dict) or not self._first_time(resource, profile.url):
            return
        if profile.base is not None:
            self.check_resource(resource, profile.base, expression)
        if profile.kind == "resource" and resource.get("resourceType") != profile.type:
            self._issue(f"This resource must be a {profile.type} ({profile.title})", expression)
            return
        self._apply(profile.root, resource, expression, resource, None)

    def drain(self) -> None:
        while self._queue:
            resource, profile_url, expression = self._queue.popleft()
            self.check_resource(resource, profile_url, expression)

    def _first_time(self, value: object, profile_url: str) -> bool:
        key = (id(value), profile_url)
        if key in self._done:
            return False
        self._done.add(key)
        return True

    def _check_datatype(
        self, value: object, profile: Profile, expression: Expression, resource: dict[str, Any]
    ) -> None:
        if not self._first_time(value, profile.url):
            return
        if profile.base is not None and (base := self._conformance.profiles.get(profile.base)) is not None:
            self._check_datatype(value, base, expression, resource)
        self._apply(profile.root, value, expression, resource, None)

    def _apply(
        self, node: Node, value: Any, expression: Expression, resource: dict[str, Any], type_name: str | None
    ) -> None:
        rule = node.rule
        if rule is not None and (rule.checks_value if type_name is not None else rule.checks_untyped_value):
            self._check_value(rule, value, expression, resource, type_name)
        if node.children and isinstance(value, dict):
            for name, child in node.plan:
                # absent, optional and unsliced (name not None): nothing to check (most elements, most of the time)
                if name is None or name in value:
                    self._check_child(child, value, expression, resource)

    def _check_child(
        self, node: Node, parent: dict[str, Any], parent_expression: Expression, resource: dict[str, Any]
    ) -> None:
        if node.is_choice:
            occurrences = _choice_occurrences(node.base_name, parent, parent_expression)
        else:
            name = node.name
            value = parent.get(name)
            if value is None:
                occurrences = []
            elif isinstance(value, list):
                occurrences = [(item, (parent_expression, name, index), None) for index, item in enumerate(value)]
            else:
                occurrences = [(value, (parent_expression, name), None)]
        rule = node.rule
        if rule is not None:
            count = len(occurrences)
            if not rule.admits(count):
                self._check_cardinality(rule, rule.path, count, (parent_expression, node.base_name), occurrences)
        if not node.inert:
            for value, expression, type_name in occurrences:
                self._apply(node, value, expression, resource, type_name)
        if node.slices:
            self._check_slices(node, occurrences, (parent_expression, node.base_name), resource)

    def _check_slices(
        self, node: Node, occurrences: list[Occurrence], expression: Expression, resource: dict[str, Any]
    ) -> None:
        members: dict[str, list[Occurrence]] = {name: [] for name in node.slices}
        for occurrence in occurrences:
            chosen = _slice_for(node, occurrence[0])
            if chosen is not None:
                members[chosen.name].append(occurrence)
            elif node.slicing_rules == "closed":
                self._issue(f"{node.name} has an entry that matches none of the allowed slices", occurrence[1])
        for name, slice_ in node.slices.items():
            rule = slice_.node.rule
            count = len(members[name])
            if rule is not None and not rule.admits(count):
                self._check_cardinality(rule, f"{rule.path}:{name}", count, expression, members[name])
            if not slice_.node.inert:
                for value, member_expression, type_name in members[name]:
                    self._apply(slice_.node, value, member_expression, resource, type_name)

    def _check_cardinality(
        self, rule: ElementRule, label: str, count: int, expression: Expression, occurrences: list[Occurrence]
    ) -> None:
        what = f"{label} ({rule.short})" if rule.short else label
        if rule.min is not None and count < rule.min:
            needed = "is required" if rule.min == 1 else f"needs at least {rule.min} entries"
            self._issue(f"{what} {needed}", expression)
        if rule.max is not None and count > rule.max:
            text = "must not be present" if rule.max == 0 else f"may appear at most {rule.max} time(s)"
            self._issue(f"{what} {text}", occurrences[rule.max][1] if occurrences else expression)

    def _check_value(
        self, rule: ElementRule, value: Any, expression: Expression, resource: dict[str, Any], type_name: str | None
    ) -> None:
        if rule.fixed is not None and not _same(value, rule.fixed):
            self._issue(f"{rule.path} must be exactly {_describe(rule.fixed)}", expression)
        if rule.pattern is not None and not matches_pattern(value, rule.pattern):
            self._issue(f"{rule.path} must include {_describe(rule.pattern)}", expression)
        if rule.regex is not None and not (isinstance(value, str) and rule.regex.fullmatch(value)):
            self._issue(f"{rule.path} has the wrong format: {rule.short or rule.regex.pattern}", expression)
        if rule.types:
            self._check_types(rule, value, expression, resource, type_name)
        if rule.binding is not None:
            self._check_binding(rule, value, expression)
        for invariant in rule.invariants:
            try:
                holds = invariant.holds(value, resource)
            except InvariantError:
                self._issue(
                    f"{rule.path}: rule {invariant.key} could not be checked: the element is malformed", expression
                )
                continue
            if not holds:
                self._issue(f"{invariant.human} ({invariant.key})", expression, invariant.severity)

    def _check_types(
        self, rule: ElementRule, value: Any, expression: Expression, resource: dict[str, Any], type_name: str | None
    ) -> None:
        plan = rule.type_plan(type_name)
        if not plan.allowed:
            codes = " or ".join(sorted({t.code for t in rule.types}))
            self._issue(f"{rule.path} must be of type {codes}", expression)
            return
        if plan.targets:
            self._check_target(rule, plan.targets, value, expression, resource)
        for type_rule in plan.profiled:
            self._check_type_profiles(type_rule, value, expression, resource)

    def _check_type_profiles(
        self, type_rule: TypeRule, value: Any, expression: Expression, resource: dict[str, Any]
    ) -> None:
        for url in type_rule.profiles:
            profile = self._conformance.profiles.get(url)
            if profile is None:
                continue
            if profile.kind == "resource":
                if isinstance(value, dict):
                    self._queue.append((value, url, expression))
            else:
                self._check_datatype(value, profile, expression, resource)

    def _check_target(
        self, rule: ElementRule, targets: tuple[str, ...], value: Any, expression: Expression, resource: dict[str, Any]
    ) -> None:
        found = self._index.resolve(value, resource)
        if found is None:
            return  # unresolvable references are reported once, by the engine; logical references are allowed
        by_type = self._targets_by_type(targets)
        actual = found.resource.get("resourceType")
        if not isinstance(actual, str) or actual not in by_type:
            named = actual if isinstance(actual, str) and _RESOURCE_TYPE_NAME.fullmatch(actual) else "resource"
            wanted = " or ".join(sorted(by_type))
            self._issue(f"{rule.path} must refer to a {wanted}, not a {named}", expression)
            return
        if found.entry is not None:
            for url in by_type[actual]:
                if url in self._conformance.profiles:
                    self._queue.append((found.resource, url, found.expression))

    def _targets_by_type(self, targets: tuple[str, ...]) -> dict[str, list[str]]:
        """Target profile URLs by the resource type they constrain (the same for every message: kept)."""
        by_type = self._by_type.get(targets)
        if by_type is None:
            by_type = {}
            for url in targets:
                profile = self._conformance.profiles.get(url)
                type_ = profile.type if profile is not None else url.removeprefix(HL7_BASE)
                by_type.setdefault(type_, []).append(url)
            self._by_type[targets] = by_type
        return by_type

    def _check_binding(self, rule: ElementRule, value: Any, expression: Expression) -> None:
        assert rule.binding is not None
        value_set = self._conformance.value_sets.get(rule.binding.value_set)
        if value_set is None or rule.binding.strength not in ("required", "extensible") or value_set.admits(value):
            return
        if rule.binding.strength == "required":
            self._issue(f"{rule.path} must use a code from ValueSet {value_set.title} ({value_set.url})", expression)
        else:
            self._issue(
                f"{rule.path} should use a code from ValueSet {value_set.title} ({value_set.url})",
                expression,
                "warning",
            )

    def _issue(self, text: str, expression: Expression, severity: str = "error") -> None:
        self._issues.append(Issue(Code.PROFILE_VIOLATION, text, render(expression), severity))


def _choice_occurrences(base: str, parent: dict[str, Any], parent_expression: Expression) -> list[Occurrence]:
    found: list[Occurrence] = []
    for key, value in parent.items():
        if key.startswith(base) and len(key) > len(base) and key[len(base)].isupper():
            suffix = key[len(base) :]
            lowered = suffix[0].lower() + suffix[1:]
            type_name = lowered if lowered in PRIMITIVE_TYPES else suffix
            found.append((value, (parent_expression, f"{base}.ofType({type_name})"), type_name))
    return found


def _slice_for(node: Node, value: object) -> Slice | None:
    """The first of the node's slices whose discriminators `value` all meet, else None."""
    lookup = node.slice_lookup
    if lookup is None:
        return next(
            (s for s in node.slices.values() if all(_discriminates(d, value) for d in s.discriminators)),
            None,
        )
    found: object = value
    for part in lookup.path:
        found = found.get(part) if isinstance(found, dict) else None
    if lookup.by_type:  # _discriminates: the resourceType equals the slice's type
        kind = found.get("resourceType") if isinstance(found, dict) else None
        return lookup.slices.get(kind) if isinstance(kind, str) else None
    return lookup.slices.get(found) if type(found) is str else None  # _same: exactly a string, equal


def _discriminates(discriminator: Discriminator, value: object) -> bool:
    found: object = value
    for part in discriminator.path:
        found = found.get(part) if isinstance(found, dict) else None
    if discriminator.kind == "type":
        return isinstance(found, dict) and found.get("resourceType") == discriminator.value
    if discriminator.kind == "fixed":
        return _same(found, discriminator.value)
    return matches_pattern(found, discriminator.value)


def matches_pattern(value: object, pattern: object) -> bool:
    """FHIR pattern[x] semantics: every part the pattern gives is present in the value (lists: some item matches)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            key in value and matches_pattern(value[key], part) for key, part in pattern.items()
        )
    if isinstance(pattern, list):
        return isinstance(value, list) and all(any(matches_pattern(item, part) for item in value) for part in pattern)
    return _same(value, pattern)


def _same(value: object, expected: object) -> bool:
    return type(value) is type(expected) and value == expected


def _describe(value: object) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, dict) and isinstance(value.get("coding"), list):
        return " or ".join(_describe(coding) for coding in value["coding"])
    if isinstance(value, dict) and "code" in value:
        system = value.get("system")
        return f"the code {system}#{value['code']}" if system else f"the code {value['code']}"
    return json.dumps(value, sort_keys=True)
