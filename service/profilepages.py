"""Human-readable pages generated from the conformance resources in fhir_profiles/: one per message, one per
profile (element table from the differential: cardinality, types and targets, fixed values, bindings, rules), a
terminology page, and the published example messages. Served under /profiles (public) and /ui/profiles (staff)
and written by `make profiles` to docs/profiles/. Everything shown comes from the resources; nothing is written by
hand here. Descriptions are markdown (FHIR's `markdown` type), rendered with markdown-it-py (CommonMark, HTML off).
"""

from __future__ import annotations

import html
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from service.terminology import PROFILES_DIR
from service.validation.loader import HL7_BASE, Conformance, load_conformance

PageLink = Callable[[str], str]
BUNDLE_PROFILE = "https://handover.nhs.example/fhir/StructureDefinition/handover-message-bundle"
COMMON_HEADER = "https://handover.nhs.example/fhir/StructureDefinition/handover-messageheader"
_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;max-width:80rem;color:#212b32}"
    "table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{border:1px solid #d8dde0;padding:.3rem .5rem;"
    "text-align:left;vertical-align:top;font-size:.9rem}th{background:#f0f4f5}code{font-size:.85rem}"
    "pre{background:#f0f4f5;padding:1rem;overflow:auto;font-size:.8rem}a{color:#005eb8}"
)


def render_pages(conformance: Conformance, link: PageLink) -> dict[str, str]:
    """Every page as {name: HTML}; `link(name)` is how one page addresses another."""
    return {name: _page(title, body, link) for name, (title, body) in render_page_bodies(conformance, link).items()}


def render_page_bodies(conformance: Conformance, link: PageLink) -> dict[str, tuple[str, str]]:
    """Every page as {name: (title, body HTML)}, for a layout of the caller's own (the staff pages')."""
    docs = conformance.documents
    examples = _examples(conformance.directory / "examples")
    structures = {d["id"]: d for d in docs.values() if d.get("resourceType") == "StructureDefinition"}
    messages = {d["id"]: d for d in docs.values() if d.get("resourceType") == "MessageDefinition"}
    pages = {"index": _index(structures, messages, link), "terminology": _terminology(docs, link)}
    for name, doc in structures.items():
        pages[name] = _structure(doc, docs, link)
    for name, doc in messages.items():
        pages[f"message-{name}"] = _message(doc, docs, examples, link)
    return pages


def write_profile_pages(out_dir: Path, directory: Path = PROFILES_DIR) -> list[Path]:
    """Write every page as `<name>.html` under `out_dir` (created if missing); returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_pages(load_conformance(directory), lambda page: f"{page}.html").items():
        path = out_dir / f"{name}.html"
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _examples(directory: Path) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for path in sorted(directory.rglob("Bundle-*.json")) if directory.is_dir() else []:
        found[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    for path in sorted(directory.rglob("OperationOutcome-*.json")) if directory.is_dir() else []:
        found[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    return found


def _page(title: str, body: str, link: PageLink) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)} - Handover profiles</title>'
        f'<style>{_STYLE}</style></head><body><p><a href="{_e(link("index"))}">Handover profiles</a></p>'
        f"<h1>{_e(title)}</h1>{body}</body></html>"
    )


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


_MARKDOWN = MarkdownIt("commonmark", {"html": False})  # raw HTML in a description is escaped, never passed through


def _md(value: object) -> str:
    """A description written in markdown (the resources' `markdown` type), rendered inline: `code`, *emphasis*,
    links; HTML in it is shown as text."""
    return str(_MARKDOWN.renderInline(str(value)))


def _canonical_link(url: str, docs: dict[str, dict[str, Any]], link: PageLink) -> str:
    bare = url.split("|", 1)[0]
    target = docs.get(bare)
    if target is not None and target.get("resourceType") == "StructureDefinition":
        return f'<a href="{_e(link(target["id"]))}">{_e(target.get("title", target["id"]))}</a>'
    if target is not None and target.get("resourceType") in ("ValueSet", "CodeSystem"):
        return f'<a href="{_e(link("terminology"))}#{_e(target["id"])}">{_e(target.get("title", target["id"]))}</a>'
    if bare.startswith(HL7_BASE):
        name = bare.removeprefix(HL7_BASE)
        return f'<a href="https://hl7.org/fhir/R4/{_e(name.lower())}.html">{_e(name)}</a>'
    return f"<code>{_e(bare)}</code>"


def _index(structures: dict[str, Any], messages: dict[str, Any], link: PageLink) -> tuple[str, str]:
    rows = "".join(
        f'<tr><td><a href="{_e(link("message-" + name))}">{_e(doc["eventCoding"]["code"])}</a></td>'
        f"<td>{_md(doc.get('description', ''))}</td>"
        f"<td>{_e(', '.join(f['code'] for f in doc.get('focus', [])))}</td></tr>"
        for name, doc in sorted(messages.items())
    )
    profiles = "".join(
        f'<tr><td><a href="{_e(link(name))}">{_e(doc.get("title", name))}</a></td><td>{_e(doc["type"])}</td>'
        f"<td>{_md(doc.get('description', ''))}</td></tr>"
        for name, doc in sorted(structures.items())
    )
    body = (
        "<p>Every Handover message is a FHIR R4 message Bundle. These pages are generated from the conformance "
        "resources the hub validates against; the canonical base is <code>https://handover.nhs.example/fhir</code>.</p>"
        f"<h2>Messages</h2><table><tr><th>event</th><th>what</th><th>focus</th></tr>{rows}</table>"
        f"<h2>Profiles and extensions</h2><table><tr><th>profile</th><th>type</th><th>description</th></tr>"
        f'{profiles}</table><p><a href="{_e(link("terminology"))}">Code systems and value sets</a></p>'
    )
    return "Handover messages and profiles", body


def _structure(doc: dict[str, Any], docs: dict[str, dict[str, Any]], link: PageLink) -> tuple[str, str]:
    rows = "".join(_element_row(element, docs, link) for element in doc.get("differential", {}).get("element", []))
    base = doc.get("baseDefinition", "")
    body = (
        f"<p>{_md(doc.get('description', ''))}</p><p>Canonical URL: <code>{_e(doc['url'])}</code><br>"
        f"Constrains {_e(doc['type'])}; based on {_canonical_link(base, docs, link)}</p>"
        "<h2>Elements</h2><table><tr><th>element</th><th>card.</th><th>type</th><th>fixed or pattern</th>"
        f"<th>binding</th><th>rules</th><th>description</th></tr>{rows}</table>"
    )
    return str(doc.get("title", doc["id"])), body


def _element_row(element: dict[str, Any], docs: dict[str, dict[str, Any]], link: PageLink) -> str:
    card = ""
    if "min" in element or "max" in element:
        card = f"{element.get('min', '')}..{element.get('max', '')}"
    types = []
    for type_ in element.get("type", []):
        named = [_canonical_link(p, docs, link) for p in (*type_.get("profile", []), *type_.get("targetProfile", []))]
        types.append(_e(type_["code"]) + (f"({' | '.join(named)})" if named else ""))
    values = [
        f"<code>{_e(json.dumps(value, ensure_ascii=False))}</code>"
        for key, value in element.items()
        if key.startswith(("fixed", "pattern"))
    ]
    binding = element.get("binding")
    bound = f"{_e(binding['strength'])}: {_canonical_link(binding['valueSet'], docs, link)}" if binding else ""
    rules = "<br>".join(
        f"<b>{_e(c['key'])}</b> ({_e(c.get('severity', 'error'))}): {_e(c['human'])}"
        f"<br><code>{_e(c['expression'])}</code>"
        for c in element.get("constraint", [])
    )
    if element.get("slicing"):
        discriminators = ", ".join(f"{d['type']}:{d['path']}" for d in element["slicing"].get("discriminator", []))
        rules = f"sliced by {_e(discriminators)}" + (f"<br>{rules}" if rules else "")
    return (
        f"<tr><td><code>{_e(element['id'])}</code></td><td>{_e(card)}</td><td>{', '.join(types)}</td>"
        f"<td>{''.join(values)}</td><td>{bound}</td><td>{rules}</td><td>{_e(element.get('short', ''))}</td></tr>"
    )


def _message(doc: dict[str, Any], docs: dict[str, Any], examples: dict[str, Any], link: PageLink) -> tuple[str, str]:
    code = doc["eventCoding"]["code"]
    focus = "".join(
        f"<tr><td>{_e(f['code'])}</td><td>{_canonical_link(f['profile'], docs, link) if f.get('profile') else ''}</td>"
        f"<td>{_e(f.get('min', 0))}..{_e(f.get('max', '*'))}</td></tr>"
        for f in doc.get("focus", [])
    )
    responses = "".join(
        f'<li><a href="{_e(link("message-" + r["message"].rsplit("/", 1)[-1]))}">'
        f"{_e(r['message'].rsplit('/', 1)[-1])}</a>: {_e(r.get('situation', ''))}</li>"
        for r in doc.get("allowedResponse", [])
    )
    header = next((u for u in docs if u.endswith(f"/handover-messageheader-{code}")), COMMON_HEADER)
    invalid = _invalid_examples(code, examples)
    example = examples.get(f"Bundle-{doc['id']}")
    handled_as = (
        f'Handled as <a href="{_e(link("message-" + doc["base"].rsplit("/", 1)[-1]))}">'
        f"{_e(doc['base'].rsplit('/', 1)[-1])}</a>. "
        if isinstance(doc.get("base"), str)
        else ""
    )
    body = (
        f"<p>{_md(doc.get('description', ''))}</p><p>Event <code>{_e(doc['eventCoding']['system'])}#{_e(code)}</code>;"
        f" category {_e(doc.get('category', ''))}; response required: {_e(doc.get('responseRequired', ''))}. "
        f"{handled_as}MessageHeader profile: {_canonical_link(header, docs, link)}. "
        f"Envelope: {_canonical_link(BUNDLE_PROFILE, docs, link)}.</p>"
        f"<h2>Focus</h2><table><tr><th>resource</th><th>profile</th><th>card.</th></tr>{focus}</table>"
        f"<h2>Allowed responses</h2><ul>{responses or '<li>none</li>'}</ul>"
        f"<h2>Invalid examples and the error each produces</h2><ul>{invalid or '<li>none published</li>'}</ul>"
        "<h2>Example</h2>"
        + (f"<pre>{_e(json.dumps(example, indent=2, ensure_ascii=False))}</pre>" if example else "<p>none</p>")
    )
    return f"Message: {doc.get('title', code)}", body


def _invalid_examples(code: str, examples: dict[str, Any]) -> str:
    """List items: each published invalid example of this event and the expression of the error it must give."""
    items = []
    for name, bundle in examples.items():
        if not name.startswith("Bundle-invalid-") or _event_of(bundle) != code:
            continue
        outcome = examples.get(name.replace("Bundle-", "OperationOutcome-"), {})
        where = ", ".join(str(i.get("expression", [""])[0]) for i in outcome.get("issue", []))
        items.append(
            f"<li><code>{_e(name.removeprefix('Bundle-invalid-'))}</code>: error at <code>{_e(where)}</code></li>"
        )
    return "".join(items)


def _event_of(bundle: dict[str, Any]) -> object:
    try:
        return bundle["entry"][0]["resource"]["eventCoding"]["code"]
    except (KeyError, IndexError, TypeError):
        return None


def _terminology(docs: dict[str, dict[str, Any]], link: PageLink) -> tuple[str, str]:
    parts = []
    for doc in sorted(docs.values(), key=lambda d: (d.get("resourceType", ""), d.get("id", ""))):
        if doc.get("resourceType") == "CodeSystem":
            rows = "".join(
                f"<tr><td><code>{_e(c['code'])}</code></td><td>{_e(c.get('display', ''))}</td>"
                f"<td>{_e(c.get('definition', ''))}</td></tr>"
                for c in doc.get("concept", [])
            )
        elif doc.get("resourceType") == "ValueSet":
            rows = "".join(
                f"<tr><td><code>{_e(c['code'])}</code></td><td>{_e(c.get('display', ''))}</td>"
                f"<td>{_e(inc['system'])}</td></tr>"
                for inc in doc.get("compose", {}).get("include", [])
                for c in inc.get("concept", [{"code": "(all codes of the system)"}])
            )
        else:
            continue
        parts.append(
            f'<h2 id="{_e(doc["id"])}">{_e(doc["resourceType"])}: {_e(doc.get("title", doc["id"]))}</h2>'
            f"<p>{_md(doc.get('description', ''))}<br><code>{_e(doc['url'])}</code></p><table>{rows}</table>"
        )
    return "Code systems and value sets", "".join(parts)


def main(argv: list[str] | None = None) -> int:
    """`python -m service.profilepages [OUT_DIR]`: write the pages (default docs/profiles) and say how many."""
    args = sys.argv[1:] if argv is None else argv
    out_dir = Path(args[0]) if args else Path("docs/profiles")
    written = write_profile_pages(out_dir)
    print(f"wrote {len(written)} profile pages to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
