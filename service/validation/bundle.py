"""The entries of a message Bundle and how its references resolve (FHIR Bundle rules, strict form).

A reference resolves when its `reference` equals an entry's fullUrl, or, for `#id`, names a resource contained
in the resource that makes the reference. A relative reference (`Patient/123`, optionally `/_history/2`) made
by an entry with a RESTful fullUrl resolves against that fullUrl's base, as FHIR's Bundle rules say; made by an
entry with a urn:uuid fullUrl it cannot resolve inside the Bundle. A versioned reference picks the entry whose
meta.versionId matches. Handover messages use urn:uuid fullUrls, so every reference quotes one.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any, NamedTuple

_RESTFUL = re.compile(r"(?P<base>.+)/(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})")
_RELATIVE = re.compile(r"(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(/_history/(?P<version>[^/]+))?")


class Located(NamedTuple):
    """A resource and where it sits in the message (a FHIRPath expression); `entry` is its entry index. (A tuple:
    one is made for every entry of every message.)"""

    resource: dict[str, Any]
    expression: str
    entry: int | None


class FoundReference(NamedTuple):
    """A Reference inside entry `entry` (whose resource is `container`), at `expression`."""

    entry: int
    reference: dict[str, Any]
    expression: str
    container: dict[str, Any]


class BundleIndex:
    """Index of one Bundle's entries by fullUrl, built once per message (service/intake/message.py) and read by the
    validator, the national-form mapping and the episode reader. Tolerates any JSON: entries that are not objects
    are skipped."""

    def __init__(self, doc: object) -> None:
        self.entries: list[Located] = []
        self._by_full_url: dict[str, list[Located]] = {}
        self._full_url_of: dict[int, str] = {}
        self._references: list[FoundReference] | None = None
        self._targets: list[Located | None] | None = None
        raw = doc.get("entry") if isinstance(doc, dict) else None
        for index, entry in enumerate(raw if isinstance(raw, list) else []):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict):
                continue
            located = Located(resource, f"Bundle.entry[{index}].resource", index)
            self.entries.append(located)
            full_url = entry.get("fullUrl")
            if isinstance(full_url, str):
                self._by_full_url.setdefault(full_url, []).append(located)
                self._full_url_of[id(resource)] = full_url

    def resolve(self, reference: object, container: dict[str, Any] | None = None) -> Located | None:
        """The resource a Reference made by `container` points at inside this Bundle, or None (also for logical
        references, which carry no `reference`)."""
        target = reference.get("reference") if isinstance(reference, dict) else None
        if not isinstance(target, str) or not target:
            return None
        if target.startswith("#"):
            return _contained(container, target[1:])
        relative = _RELATIVE.fullmatch(target) if "A" <= target[0] <= "Z" else None  # _RELATIVE starts [A-Z]
        if relative is None:
            candidates = self._by_full_url.get(target)
            return candidates[0] if candidates else None  # _first, unversioned
        restful = _RESTFUL.fullmatch(self._full_url_of.get(id(container), "")) if container is not None else None
        if restful is None:
            return None
        candidates = self._by_full_url.get(f"{restful['base']}/{relative['type']}/{relative['id']}")
        return _first(candidates, relative["version"])

    def resolve_for_fhirpath(self, reference: dict[str, Any]) -> dict[str, Any] | None:
        found = self.resolve(reference)
        return found.resource if found is not None else None

    def target(self, reference: object) -> dict[str, Any] | None:
        """The entry resource a Reference points at by fullUrl (None if none, or if `reference` is not a Reference)."""
        found = self.resolve(reference)
        return found.resource if found is not None else None

    @property
    def header(self) -> dict[str, Any] | None:
        """The first entry's resource when it is entry 0 (the MessageHeader of a well-formed message)."""
        return self.entries[0].resource if self.entries and self.entries[0].entry == 0 else None

    def resources(self) -> list[dict[str, Any]]:
        """Every entry's resource, in entry order."""
        return [located.resource for located in self.entries]

    def references(self) -> list[FoundReference]:
        """Every Reference (an object with a string `reference`) inside every entry's resource (found once: the
        engine checks that each resolves, `unreachable` follows them)."""
        if self._references is None:
            found: list[FoundReference] = []
            for located in self.entries:
                if located.entry is not None:
                    _collect_references(located.resource, located.expression, located, found)
            self._references = found
        return self._references

    def targets(self) -> list[Located | None]:
        """What each of `references()` resolves to (None: it does not resolve), in the same order; resolved once."""
        if self._targets is None:
            self._targets = [self.resolve(found.reference, found.container) for found in self.references()]
        return self._targets

    def unreachable(self) -> list[Located]:
        """Entries no chain of references from the first entry (the MessageHeader) reaches."""
        if not self.entries or self.entries[0].entry != 0:
            return []
        edges: dict[int, set[int]] = {}
        for found, target in zip(self.references(), self.targets(), strict=True):
            if target is not None and target.entry is not None:
                edges.setdefault(found.entry, set()).add(target.entry)
        seen, queue = {0}, deque([0])
        while queue:
            for nxt in edges.get(queue.popleft(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
        return [located for located in self.entries if located.entry not in seen]


def _first(candidates: list[Located] | None, version: str | None = None) -> Located | None:
    for located in candidates or []:
        meta = located.resource.get("meta")
        if version is None or (isinstance(meta, dict) and meta.get("versionId") == version):
            return located
    return None


def _contained(container: dict[str, Any] | None, local_id: str) -> Located | None:
    contained = container.get("contained") if isinstance(container, dict) else None
    for index, resource in enumerate(contained if isinstance(contained, list) else []):
        if isinstance(resource, dict) and resource.get("id") == local_id:
            return Located(resource, f"contained[{index}]", None)
    return None


def _collect_references(value: dict[str, Any], expression: str, entry: Located, found: list[FoundReference]) -> None:
    """Append every Reference inside `value` (an object at `expression`) to `found`, depth first in document order.
    Expressions are written only for objects and arrays: most values are strings."""
    if isinstance(value.get("reference"), str):
        assert entry.entry is not None
        found.append(FoundReference(entry.entry, value, expression, entry.resource))
    for key, child in value.items():
        if type(child) is str:  # most values: nothing below them
            continue
        if isinstance(child, dict):
            _collect_references(child, f"{expression}.{key}", entry, found)
        elif isinstance(child, list):
            _collect_in_list(child, f"{expression}.{key}", entry, found)


def _collect_in_list(items: list[Any], expression: str, entry: Located, found: list[FoundReference]) -> None:
    for index, item in enumerate(items):
        if isinstance(item, dict):
            _collect_references(item, f"{expression}[{index}]", entry, found)
        elif isinstance(item, list):
            _collect_in_list(item, f"{expression}[{index}]", entry, found)
