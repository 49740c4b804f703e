"""`handover cwt allocate [FILE|-]` (CONTRACT section 9; hazard HAZ-23): the same list out with the
allocation added; bad input exits 2 with one line per bad item naming its id and field, and nothing on stdout."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from service.cli import main
from service.cwt_cli import allocate_command

PATHWAYS = [
    {
        "id": "late-transfer",
        "clock_start": "2026-09-01",
        "ipt_received_date": "2026-10-10",
        "treatment_date": "2026-11-03",
        "referring": "RGN",
        "treating": "RGT",
        "local_note": "kept as given",
    },
    {
        "id": "waiting",
        "clock_start": "2026-09-01",
        "ipt_received_date": "2026-10-01",
        "treatment_date": None,
        "referring": "RGN",
        "treating": "RGT",
        "adjustment_days_referring": 2,
    },
]


def test_allocate_file_writes_the_same_list_with_the_allocation_added(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "pathways.json"
    source.write_text(json.dumps(PATHWAYS), encoding="utf-8")
    assert main(["cwt", "allocate", str(source)]) == 0
    out = capsys.readouterr()
    result = json.loads(out.out)
    assert [{k: item[k] for k in PATHWAYS[i]} for i, item in enumerate(result)] == PATHWAYS
    assert result[0] == PATHWAYS[0] | {
        "allocation_rule": "referring",
        "allocation": {"RGN": 1.0},
        "d38": 39,
        "d24": 24,
        "d62": 63,
        "transferred_by_day_38": False,
        "treated_within_24_days": True,
        "met_62_days": False,
    }
    assert result[1]["allocation_rule"] == "pending"
    assert (result[1]["d38"], result[1]["transferred_by_day_38"], result[1]["met_62_days"]) == (28, True, None)


def run(text: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = allocate_command("-", io.StringIO(text), out, err)
    return status, out.getvalue(), err.getvalue()


def test_allocate_reads_standard_input() -> None:
    status, out, err = run(json.dumps(PATHWAYS[:1]))
    assert (status, err) == (0, "")
    assert json.loads(out)[0]["allocation_rule"] == "referring"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[{", "input: not JSON"),
        ('{"id": "a"}', "input: not a JSON list of pathways"),
        ("[NaN]", "input: not JSON"),
        ('[{"id": "a", "id": "b"}]', "input: not JSON"),
    ],
)
def test_input_that_is_not_a_json_list_exits_2(text: str, line: str) -> None:
    status, out, err = run(text)
    assert (status, out) == (2, "")
    assert err.startswith(line)
    assert err.count("\n") == 1


def test_each_bad_item_is_one_line_naming_its_id_and_field_and_nothing_is_written() -> None:
    good, waiting = PATHWAYS
    items = [
        good,
        {k: v for k, v in waiting.items() if k != "treating"},
        {**good, "id": "bad-date", "ipt_received_date": "10/10/2026"},
        {**good, "id": "treated-before-start", "treatment_date": "2026-08-31", "ipt_received_date": None},
        {**good, "id": "line\nbreak", "clock_start": None},
        "not an object",
    ]
    status, out, err = run(json.dumps(items))
    assert (status, out) == (2, "")
    assert err.splitlines() == [
        "waiting: treating: missing or not an ODS code",
        "bad-date: ipt_received_date: not a date YYYY-MM-DD",
        "treated-before-start: treatment_date: is before the clock_start",
        "line?break: clock_start: not a date YYYY-MM-DD",
        "item 5: item: is not a JSON object",
    ]


def test_a_missing_file_exits_2_without_a_traceback(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert allocate_command(str(tmp_path / "absent.json"), io.StringIO(), out, err) == 2
    assert out.getvalue() == ""
    assert "cannot read" in err.getvalue()
    assert "Traceback" not in err.getvalue()
