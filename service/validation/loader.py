"""Reading fhir_profiles/ into the compiled form the validator applies (service/validation/model.py).

Every StructureDefinition, ValueSet, CodeSystem and MessageDefinition under the directory is read (examples/ and
signing-vectors/ are not conformance resources). Anything the validator could not apply faithfully - an
unexpandable ValueSet, a binding to a ValueSet that is not here, an unsupported slicing discriminator, FHIRPath
that does not parse - is refused with ValueError at load time rather than silently ignored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.validation.fhirpath import Invariant
from service.validation.model import (
    Binding,
    Discriminator,
    ElementRule,
    FocusRule,
    MessageRule,
    Node,
    Profile,
    Slice,
    TypeRule,
)
from service.validation.valuesets import ValueSet, canonical_url, expand_value_set

NOT_CONFORMANCE = frozenset({"examples", "signing-vectors"})
HL7_BASE = "http://hl7.org/fhir/StructureDefinition/"
REGEX_EXTENSION = HL7_BASE + "regex"


@dataclass
class Conformance:
    """Everything read from the profiles directory, indexed by canonical URL."""

    directory: Path
    profiles: dict[str, Profile]
    value_sets: dict[str, ValueSet]
    messages: dict[tuple[str, str], MessageRule]
    bundle_profile: Profile
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)  # canonical URL -> the resource as read

    def message_rule(self, system: object, code: object) -> MessageRule | None:
        if not isinstance(system, str) or not isinstance(code, str):
            return None
        return self.messages.get((system, code))

    def handover_event(self, system: object, code: object) -> str | None:
        """The Handover event a message with this MessageHeader.eventCoding is handled as (a BaRS event maps to the
        event of its MessageDefinition's `base`), or None if the hub accepts no such event."""
        rule = self.message_rule(system, code)
        return rule.handover_event if rule is not None else None


def load_conformance(directory: Path) -> Conformance:
    """Read and compile the conformance resources under `directory`; raises ValueError on a fault in them."""
    documents: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.rglob("*.json")):
        if NOT_CONFORMANCE.intersection(path.relative_to(directory).parts):
            continue
        doc = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and isinstance(doc.get("url"), str):
            documents[doc["url"]] = doc
    code_systems = {
        url: frozenset(str(concept["code"]) for concept in doc.get("concept") or [])
        for url, doc in documents.items()
        if doc.get("resourceType") == "CodeSystem"
    }
    value_sets = {
        url: expand_value_set(doc, code_systems)
        for url, doc in documents.items()
        if doc.get("resourceType") == "ValueSet"
    }
    profiles = {
        url: compile_profile(doc) for url, doc in documents.items() if doc.get("resourceType") == "StructureDefinition"
    }
    _check_references(profiles, value_sets)
    bundles = [profile for profile in profiles.values() if profile.type == "Bundle"]
    if len(bundles) != 1:
        raise ValueError("fhir_profiles/ must hold exactly one Bundle profile (the message envelope)")
    messages: dict[tuple[str, str], MessageRule] = {}
    for doc in documents.values():
        if doc.get("resourceType") == "MessageDefinition":
            rule = _message_rule(doc, profiles, documents)
            messages[(rule.event_system, rule.event_code)] = rule
    return Conformance(directory, profiles, value_sets, messages, bundles[0], documents)


def compile_profile(doc: dict[str, Any]) -> Profile:
    """The element tree of one StructureDefinition's differential."""
    root = Node(str(doc["type"]))
    for element in (doc.get("differential") or {}).get("element") or []:
        node = _node_for(root, str(element["id"]))
        node.rule = _element_rule(element)
        slicing = element.get("slicing")
        if isinstance(slicing, dict):
            node.slicing_rules = str(slicing.get("rules", "open"))
            node.discriminator_specs = [(str(d["type"]), str(d["path"])) for d in slicing.get("discriminator") or []]
    _compile_discriminators(root, str(doc["url"]))
    base = doc.get("baseDefinition")
    return Profile(
        url=str(doc["url"]),
        title=str(doc.get("title") or doc.get("name") or doc["url"]),
        type=str(doc["type"]),
        kind=str(doc.get("kind", "resource")),
        root=root,
        base=base if isinstance(base, str) and not base.startswith(HL7_BASE) else None,
    )


def _node_for(root: Node, element_id: str) -> Node:
    node = root
    for part in element_id.split(".")[1:]:
        name, _, slice_name = part.partition(":")
        child = node.children.setdefault(name, Node(name))
        if slice_name:
            if slice_name not in child.slices:
                child.slices[slice_name] = Slice(slice_name, Node(name))
            node = child.slices[slice_name].node
        else:
            node = child
    return node


def _element_rule(element: dict[str, Any]) -> ElementRule:
    path = str(element["path"])
    maximum = element.get("max")
    fixed = next((value for key, value in element.items() if key.startswith("fixed")), None)
    pattern = next((value for key, value in element.items() if key.startswith("pattern")), None)
    binding = element.get("binding") or {}
    return ElementRule(
        path=path,
        min=element.get("min"),
        max=None if maximum in (None, "*") else int(maximum),
        fixed=fixed,
        pattern=pattern,
        types=tuple(
            TypeRule(
                code=str(t["code"]),
                profiles=tuple(t.get("profile") or ()),
                target_profiles=tuple(t.get("targetProfile") or ()),
            )
            for t in element.get("type") or []
        ),
        binding=Binding(str(binding["strength"]), canonical_url(str(binding["valueSet"])))
        if binding.get("valueSet")
        else None,
        invariants=tuple(
            Invariant.compile(
                str(c["key"]), str(c.get("severity", "error")), str(c["human"]), str(c["expression"]), path
            )
            for c in element.get("constraint") or []
        ),
        short=str(element.get("short", "")),
        regex=_regex(element),
    )


def _regex(element: dict[str, Any]) -> re.Pattern[str] | None:
    """The pattern of the standard regex extension on the element (or on one of its types), if any."""
    extensions = [*(element.get("extension") or [])]
    for type_ in element.get("type") or []:
        extensions += type_.get("extension") or []
    for extension in extensions:
        if extension.get("url") == REGEX_EXTENSION:
            try:
                return re.compile(str(extension["valueString"]))
            except re.error as exc:
                raise ValueError(f"{element['id']}: the regex extension is not a valid regular expression") from exc
    return None


def _compile_discriminators(node: Node, url: str) -> None:
    for child in node.children.values():
        _compile_discriminators(child, url)
        for slice_ in child.slices.values():
            _compile_discriminators(slice_.node, url)
            slice_.discriminators = _slice_discriminators(child, slice_, url)


def _slice_discriminators(sliced: Node, slice_: Slice, url: str) -> list[Discriminator]:
    specs = sliced.discriminator_specs or (
        [("value", "url")] if sliced.name in ("extension", "modifierExtension") else []
    )
    if not specs:
        raise ValueError(f"{url}: slices of {sliced.name} need a slicing discriminator")
    found: list[Discriminator] = []
    for kind, path in specs:
        parts = tuple(path.split("."))
        target = _descend(slice_.node, parts)
        rule = target.rule if target is not None else None
        if kind == "type" and rule is not None and rule.types:
            found.append(Discriminator("type", parts, rule.types[0].code))
        elif kind in ("value", "pattern") and rule is not None and (rule.fixed is not None or rule.pattern is not None):
            is_fixed = rule.fixed is not None
            found.append(
                Discriminator("fixed" if is_fixed else "pattern", parts, rule.fixed if is_fixed else rule.pattern)
            )
        elif kind == "value" and path == "url" and slice_.node.rule and slice_.node.rule.types:
            found.append(Discriminator("fixed", parts, slice_.node.rule.types[0].profiles[0]))
        else:
            raise ValueError(f"{url}: slice {slice_.name} does not define its discriminator {kind}:{path}")
    return found


def _descend(node: Node, parts: tuple[str, ...]) -> Node | None:
    current: Node | None = node
    for part in parts:
        current = current.children.get(part) if current is not None else None
    return current


def _check_references(profiles: dict[str, Profile], value_sets: dict[str, ValueSet]) -> None:
    """Every binding names a ValueSet we hold; every profile named that is not an HL7 base type is ours."""
    for profile in profiles.values():
        for rule in _rules(profile.root):
            if rule.binding is not None and rule.binding.value_set not in value_sets:
                raise ValueError(f"{profile.url}: {rule.path} is bound to unknown ValueSet {rule.binding.value_set}")
            for type_rule in rule.types:
                for named in (*type_rule.profiles, *type_rule.target_profiles):
                    if not named.startswith(HL7_BASE) and named not in profiles:
                        raise ValueError(f"{profile.url}: {rule.path} names unknown profile {named}")


def _rules(node: Node) -> list[ElementRule]:
    found = [node.rule] if node.rule is not None else []
    for child in node.children.values():
        found += _rules(child)
        for slice_ in child.slices.values():
            found += _rules(slice_.node)
    return found


def _message_rule(
    doc: dict[str, Any], profiles: dict[str, Profile], documents: dict[str, dict[str, Any]]
) -> MessageRule:
    event = doc["eventCoding"]
    focus = tuple(
        FocusRule(
            resource_type=str(item["code"]),
            profile=canonical_url(str(item["profile"])) if item.get("profile") else None,
            min=int(item.get("min", 0)),
            max=None if item.get("max", "*") == "*" else int(item["max"]),
        )
        for item in doc.get("focus") or []
    )
    for item in focus:
        if item.profile is not None and item.profile not in profiles:
            raise ValueError(f"{doc['url']}: focus profile {item.profile} is not in fhir_profiles/")
    wanted = {"system": event["system"], "code": event["code"]}
    headers = [
        profile.url
        for profile in profiles.values()
        if profile.type == "MessageHeader"
        and (event_node := profile.root.children.get("event[x]")) is not None
        and event_node.rule is not None
        and event_node.rule.pattern == wanted
    ]
    if len(headers) > 1:
        raise ValueError(f"{doc['url']}: more than one MessageHeader profile fixes this event")
    handled_as = event
    if isinstance(doc.get("base"), str):
        base = documents.get(canonical_url(doc["base"]))
        if base is None or base.get("resourceType") != "MessageDefinition" or base.get("base"):
            raise ValueError(f"{doc['url']}: base must be a Handover event's MessageDefinition in fhir_profiles/")
        handled_as = base["eventCoding"]
    return MessageRule(
        url=str(doc["url"]),
        event_system=str(event["system"]),
        event_code=str(event["code"]),
        focus=focus,
        header_profile=headers[0] if headers else None,
        handover_system=str(handled_as["system"]),
        handover_event=str(handled_as["code"]),
    )
