"""`handover validate FILE...` (adapters/validate_cli.py): an exit status a script can use and a report a person
can read, the same issues as $validate, and never the file's values."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from adapters.validate_cli import validate_files
from service.terminology import PROFILES_DIR

EXAMPLES = PROFILES_DIR / "examples"


def run(*paths: Path) -> tuple[int, str]:
    out = io.StringIO()
    status = validate_files(list(paths), Console(file=out, width=200, color_system=None))
    return status, out.getvalue()


def test_valid_files_exit_zero() -> None:
    status, text = run(*sorted(EXAMPLES.glob("Bundle-*.json")))
    assert status == 0
    assert text.count("VALID") == len(list(EXAMPLES.glob("Bundle-*.json"))) == 8 and "INVALID" not in text


def test_an_invalid_file_exits_one_and_says_where_and_why(tmp_path: Path) -> None:
    status, text = run(
        EXAMPLES / "Bundle-referral.json", EXAMPLES / "invalid" / "Bundle-invalid-referral-no-reason.json"
    )
    assert status == 1
    assert "INVALID 1 error" in text
    assert "Bundle.entry[1].resource" in text and "hov-ref-1" in text and "profile-violation" in text


def test_warnings_do_not_fail_the_command(tmp_path: Path) -> None:
    doc = json.loads((EXAMPLES / "Bundle-referral.json").read_text())
    doc["entry"][1]["resource"].pop("extension")
    path = tmp_path / "warned.json"
    path.write_text(json.dumps(doc))
    status, text = run(path)
    assert (
        status == 0 and "VALID, 4 warnings" in text
    )  # key worker, pathway start, and the two now-unreferenced entries


def test_bad_json_and_missing_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_bytes(b'{"resourceType": "Bundle", "resourceType": "Bundle"}')
    status, text = run(broken)
    assert status == 1 and "invalid-json" in text
    status, text = run(tmp_path / "absent.json", broken)
    assert status == 2 and "CANNOT READ" in text


def test_the_report_never_prints_the_file_values(tmp_path: Path) -> None:
    doc = json.loads((EXAMPLES / "Bundle-referral.json").read_text())
    doc["entry"][2]["resource"]["gender"] = "SECRET-GENDER"
    doc["entry"][2]["resource"]["identifier"][0]["value"] = "SECRET-NHS"
    path = tmp_path / "secret.json"
    path.write_text(json.dumps(doc))
    status, text = run(path)
    assert status == 1 and "SECRET" not in text
