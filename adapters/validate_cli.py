"""The body of `handover validate FILE...`: check message files against the Handover profiles, offline.

Each file gets the report the hub would give (`POST /fhir/Bundle/$validate`): strict JSON, the message
envelope, then every profile rule. Exit status: 0 when every file conforms (warnings allowed), 1 when any file
has an error, 2 when a file cannot be read. The report names elements and rules, never the file's values.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from service.conformance import check_document, unwrap_parameters
from service.errors import HandoverError, Issue
from service.strictjson import parse_strict_json
from service.terminology import CodeSystem, load_code_system
from service.validation import Validator, load_validator

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow"}


def validate_files(
    paths: Sequence[Path],
    console: Console,
    *,
    validator: Validator | None = None,
    events: CodeSystem | None = None,
) -> int:
    """Report on each file in `paths` to `console`; the exit status described in the module docstring."""
    validator = validator or load_validator()
    events = events or load_code_system("handover-event")
    status = 0
    for path in paths:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            console.print(f"[bold red]CANNOT READ[/] {escape(str(path))}: {escape(exc.strerror or 'unreadable')}")
            status = 2
            continue
        issues = issues_of(raw, events, validator)
        errors = sum(1 for issue in issues if issue.severity == "error")
        warnings = len(issues) - errors
        if errors:
            status = max(status, 1)
            verdict = f"[bold red]INVALID[/] {errors} error{'s' * (errors != 1)}"
        else:
            verdict = "[bold green]VALID[/]"
        if warnings:
            verdict += f", {warnings} warning{'s' * (warnings != 1)}"
        console.print(f"{verdict}  {escape(str(path))}")
        if issues:
            console.print(_table(issues))
    return status


def issues_of(raw: bytes, events: CodeSystem, validator: Validator) -> list[Issue]:
    """The hub's conformance issues for one file's bytes."""
    try:
        doc = unwrap_parameters(parse_strict_json(raw))
    except HandoverError as refusal:
        return refusal.issues
    return check_document(doc, events, validator)


def _table(issues: list[Issue]) -> Table:
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False, expand=False)
    table.add_column("severity", no_wrap=True)
    table.add_column("code", no_wrap=True)
    table.add_column("where (FHIRPath)", overflow="fold")
    table.add_column("what", overflow="fold")
    for issue in issues:
        severity = Text(issue.severity, style=SEVERITY_STYLE.get(issue.severity, ""))
        table.add_row(severity, Text(issue.code.value), Text(issue.expression or "-"), Text(issue.text))
    return table
