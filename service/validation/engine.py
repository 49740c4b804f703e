"""The profile-driven validator: one message Bundle in, every issue out.

Order of work for a message: the Bundle profile (its entry slices give each Patient, Organization, ... its
profile); the MessageDefinition of the MessageHeader's event (the event's MessageHeader profile, and which focus
resources with which profiles); every profile reached through a reference's target profile; then message-wide
rules: every reference resolves inside the Bundle, and every entry is reachable from the MessageHeader.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from service.errors import Code, Issue
from service.validation.bundle import BundleIndex, Located
from service.validation.fhirpath import resolving_with
from service.validation.loader import Conformance, load_conformance
from service.validation.model import MessageRule
from service.validation.walker import Walker


class Validator:
    """Validates message Bundles against the conformance resources it was built from."""

    def __init__(self, conformance: Conformance) -> None:
        self._conformance = conformance
        self._targets_by_type: dict[tuple[str, ...], dict[str, list[str]]] = {}  # shared by every message's Walker

    @classmethod
    def from_directory(cls, directory: Path) -> Validator:
        return cls(load_conformance(directory))

    @property
    def conformance(self) -> Conformance:
        return self._conformance

    def validate(self, doc: object, index: BundleIndex | None = None) -> list[Issue]:
        """Every problem found in `doc` (errors first, then warnings), each as a profile-violation Issue with a
        FHIRPath expression. An empty list, or warnings only, means the message conforms. Never raises for any
        JSON value, and never changes `doc`. `index` is the message's own index of `doc` when the caller has one
        (intake's InboundMessage), so the Bundle is not indexed twice."""
        if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
            return [Issue(Code.PROFILE_VIOLATION, "A Handover message must be a FHIR Bundle", "Bundle")]
        issues: list[Issue] = []
        index = index if index is not None else BundleIndex(doc)
        walker = Walker(self._conformance, index, issues, self._targets_by_type)
        with resolving_with(index.resolve_for_fhirpath):
            walker.check_resource(doc, self._conformance.bundle_profile.url, "Bundle")
            self._check_message(index, walker, issues)
            walker.drain()
        _check_references_resolve(index, issues)
        _check_entries_reachable(index, issues)
        return sorted(issues, key=lambda issue: issue.severity != "error")

    def _check_message(self, index: BundleIndex, walker: Walker, issues: list[Issue]) -> None:
        header = index.entries[0] if index.entries and index.entries[0].entry == 0 else None
        if header is None or header.resource.get("resourceType") != "MessageHeader":
            issues.append(_issue("The first entry of a message must be its MessageHeader", "Bundle.entry[0].resource"))
            return
        coding = header.resource.get("eventCoding")
        rule = self._conformance.message_rule(
            coding.get("system") if isinstance(coding, dict) else None,
            coding.get("code") if isinstance(coding, dict) else None,
        )
        if rule is None:
            return  # the required binding of MessageHeader.event[x] has already said so
        if rule.header_profile is not None:
            walker.check_resource(header.resource, rule.header_profile, header.expression)
        self._check_focus(rule, header, index, walker, issues)

    def _check_focus(
        self, rule: MessageRule, header: Located, index: BundleIndex, walker: Walker, issues: list[Issue]
    ) -> None:
        """MessageDefinition.focus: which resource types the focus may be, how many of each, which profile."""
        focus = header.resource.get("focus")
        counts: Counter[str] = Counter()
        for position, reference in enumerate(focus if isinstance(focus, list) else []):
            expression = f"{header.expression}.focus[{position}]"
            found = index.resolve(reference, header.resource)
            if found is None:
                if not (isinstance(reference, dict) and isinstance(reference.get("reference"), str)):
                    issues.append(_issue("MessageHeader.focus must refer to an entry of this message", expression))
                continue
            kind = found.resource.get("resourceType")
            allowed = [item for item in rule.focus if item.resource_type == kind]
            if not allowed:
                wanted = " or ".join(item.resource_type for item in rule.focus) or "nothing"
                issues.append(
                    _issue(
                        f"The focus of a '{rule.event_code}' message must be {wanted} (MessageDefinition {rule.url})",
                        expression,
                    )
                )
                continue
            counts[allowed[0].resource_type] += 1
            if allowed[0].profile is not None:
                walker.check_resource(found.resource, allowed[0].profile, found.expression)
        for item in rule.focus:
            count = counts[item.resource_type]
            if count < item.min or (item.max is not None and count > item.max):
                span = f"{item.min}" if item.min == item.max else f"{item.min} to {item.max or 'many'}"
                issues.append(
                    _issue(
                        f"A '{rule.event_code}' message needs {span} focus {item.resource_type} "
                        f"(MessageDefinition {rule.url})",
                        f"{header.expression}.focus",
                    )
                )


def _check_references_resolve(index: BundleIndex, issues: list[Issue]) -> None:
    issues.extend(
        _issue(
            "This reference does not resolve inside the message: it must equal the fullUrl of an entry "
            "(or be #id of a contained resource)",
            f"{found.expression}.reference",
        )
        for found, target in zip(index.references(), index.targets(), strict=True)
        if target is None
    )


def _check_entries_reachable(index: BundleIndex, issues: list[Issue]) -> None:
    issues.extend(
        _issue(
            "This entry is not referenced from the MessageHeader, directly or through the resources it refers to",
            located.expression,
            "warning",
        )
        for located in index.unreachable()
    )


def _issue(text: str, expression: str, severity: str = "error") -> Issue:
    return Issue(Code.PROFILE_VIOLATION, text, expression, severity)
