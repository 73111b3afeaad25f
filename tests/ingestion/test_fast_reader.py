"""The fast reader (tap_landing.columnar) reads exactly what the line reader (tap_landing.parsing) reads.

Each case is read by both in tap-landing's own venv (fast_reader_check.py). Whatever the fast reader takes
must be, line for line and value for value (type included), what the line reader produces; where it cannot
vouch for a chunk it stops, and the line reader (which the tap then uses) decides. Cases: every column
type's tricky values (as CSV text, as JSON text and as JSON values), a few thousand generated ones around
valid values, and file shapes (CRLF, BOM, quotes, empty lines, an unfinished last line, a resume point, a
bad line after a chunk that read fast). The cases the platform's files look like must read fast.
"""

from __future__ import annotations

import base64
import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest

from platform_assets import environment

pytestmark = pytest.mark.integration

CHECKER = Path(__file__).with_name("fast_reader_check.py")

TEXT_VALUES = {
    "integer": ["0", "-0", "007", "5", "-5", "+5", " 5", "5 ", "1_000", "9223372036854775807",
                "9223372036854775808", "-9223372036854775808", "-9223372036854775809", "123456789012345678",
                "1234567890123456789", "١٢", "5.0", "1e3", "abc", "0x10", ""],
    "number": ["1.5", "-1.5", "0", "1e5", "1E-5", "1e+5", ".5", "5.", "nan", "inf", "-inf", "1e400", "0.1",
               "123456789012345", "1234567890123456.5", "-0.0", "1_0.5", " 1.5", "1.5e-07",
               "2.2250738585072014e-308", "9007199254740993", "0.30000000000000004", "1e-320", ""],
    "decimal": ["1.00", "-0.5", "1e3", "NaN", ".5", "5.", "12345678901234567890.123", "+1", "1_000", " 1",
                "Infinity", ""],
    "boolean": ["true", "TRUE", "True", "Yes", "y", "N", "0", "1", " true", "truE", "\u017f", "fal\u017fe",
                "ok", "tru", "T", "f", ""],
    "date": ["2024-02-29", "2023-02-29", "0000-01-01", "0001-01-01", "9999-12-31", "20260501", "2026-W01-1",
             "2026-13-01", "2026-00-10", "2026-5-1", "2026-05-01 ", "2026-05-01T00:00", "2026-04-31", ""],
    "date-time": ["2026-05-01T10:00", "2026-05-01 10:00:00", "2026-05-01T10:00:00.123456",
                  "2026-05-01T10:00:00.1234567", "2026-05-01T10:00:00Z", "2026-05-01T10:00:00+05:30",
                  "2026-05-01T10:00:00-23:59", "2026-05-01T10:00:00+24:00", "2026-05-01T24:00:00",
                  "2026-05-01T10:00:60", "2023-02-29T10:00:00", "2026-05-01", "2026-05-01T10",
                  "2026-05-01t10:00", "2026-05-01T10:00:00,5", "0000-01-01T00:00", "2026-05-01T10:00:00+0530",
                  ""],
    "string": ["hello", "", " ", "a b", "\u00e9", "\u65e5\u672c", "x\ty", "null", "\\N"],
}  # fmt: skip
# Values the platform's files hold: the fast reader must take them.
FAST_TEXT = {
    "integer": "-42",
    "number": "3.25",
    "decimal": "19.99",
    "boolean": "false",
    "date": "2026-05-01",
    "date-time": "2026-05-01T10:00:00",
    "string": "hello",
}
JSON_VALUES: list[Any] = [
    *(5, -5, 0, 2**63 - 1, 2**63, -(2**63), 12345678901234567890, 2**53 + 1),
    *(1.5, 1.0, -0.0, 1e300, True, False, None, "5", "", "true", "2026-05-01", [1], {"a": 1}),
]
FAST_JSON = {"integer": 7, "number": 2.5, "boolean": True, "string": "x"}
_ALPHABET = "0123456789-+.eE:TZ tfyn_"


def generated_values(kind: str, count: int, rng: random.Random) -> list[str]:
    """Random strings over characters that matter to the parsers, and one-character edits of valid values."""
    valid = [value for value in TEXT_VALUES[kind] if value][:6]
    values = []
    for _ in range(count):
        if rng.random() < 0.3:
            values.append("".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, 14))))
            continue
        text = list(rng.choice(valid))
        position = rng.randrange(len(text) + 1)
        edit = rng.choice(("insert", "replace", "delete"))
        if edit == "insert" or not text:
            text.insert(position, rng.choice(_ALPHABET))
        elif edit == "replace":
            text[min(position, len(text) - 1)] = rng.choice(_ALPHABET)
        else:
            del text[min(position, len(text) - 1)]
        values.append("".join(text))
    return values


def csv_case(kind: str, value: str) -> dict:
    return {"format": "csv", "columns": {"k": "string", "x": kind}, "data": f"k,x\nr1,{value}\nr2,{value}\n"}


def jsonl_case(kind: str, value: Any) -> dict:
    lines = "".join(json.dumps({"k": f"r{i}", "x": value}) + "\n" for i in (1, 2))
    return {"format": "jsonl", "columns": {"k": "string", "x": kind}, "data": lines}


TYPED = {"id": "string", "n": "integer", "amount": "decimal", "ok": "boolean", "at": "date-time"}
HEADER = "id,n,amount,ok,at\n"
CSV_ROWS = "".join(f"r{i},{i},{i}.5,{'true' if i % 2 else 'no'},2026-05-0{i}T08:00:00\n" for i in range(1, 7))
JSON_ROWS = "".join(
    json.dumps({"id": f"r{i}", "n": i, "amount": f"{i}.5", "ok": i % 2 == 1, "at": f"2026-05-0{i}T08:00:00"})
    + "\n"
    for i in range(1, 7)
)
BIG_CSV = HEADER + "".join(
    f"r{i},{i},{i}.25,true,2026-05-01T08:00:00\n" if i != 2500 else "r2500,not-a-number,1,true,2026-05-01\n"
    for i in range(2, 3001)
)  # the first 64 KiB chunk reads fast, the next holds line 2500
PAIR = {"id": "string", "n": "integer"}


def csv(data: str | bytes, columns: dict = TYPED, **extra: Any) -> dict:
    return {"format": "csv", "columns": columns, "data": data, **extra}


def jsonl(data: str, columns: dict = TYPED, **extra: Any) -> dict:
    return {"format": "jsonl", "columns": columns, "data": data, **extra}


# name -> (case, must the fast reader read it to the end?)
SHAPES: dict[str, tuple[dict, bool]] = {
    "csv": (csv(HEADER + CSV_ROWS), True),
    "csv_header_order": (csv("at,ok,amount,n,id\n2026-05-01T08:00:00,yes,1.0,1,r1\n"), True),
    "csv_crlf": (csv((HEADER + CSV_ROWS).replace("\n", "\r\n")), True),
    "csv_mixed_endings": (csv(HEADER.replace("\n", "\r\n") + CSV_ROWS.replace("\n", "\r\n", 2)), True),
    "csv_bom": (csv("\ufeff" + HEADER + CSV_ROWS), True),
    "csv_empty_cells": (csv(HEADER + "r1,,,,\n,2,,,\n"), True),
    "csv_resume": (csv(HEADER + CSV_ROWS, after_line=4), True),
    "csv_quotes": (csv(HEADER + '"r,1",1,1,t,2026-05-01\n'), False),
    "csv_quoted_newline": (csv(HEADER + '"r\n1",1,1,t,2026-05-01\nr2,2,2,f,2026-05-01\n'), False),
    "csv_empty_line": (csv(HEADER + CSV_ROWS + "\n" + CSV_ROWS), False),
    "csv_one_column_empty_line": (csv("id\na\n\nb\n\r\nc\n", {"id": "string"}), False),
    "csv_bare_carriage_return": (csv("id,n\na\rb,1\n", PAIR), False),
    "csv_short_row": (csv("id,n\na,1\nb\nc,3\n", PAIR), False),
    "csv_unfinished_last_line": (csv(HEADER + CSV_ROWS + "r9,9"), False),
    "csv_nul": (csv("id,n\na\x00,1\n", PAIR), False),
    "csv_latin1": (csv(b"id,n\n\xe9,1\n", PAIR), False),
    "csv_header_changed": (csv("id,count\nr1,1\n"), False),
    "csv_quoted_header_resume": (csv('"id","n","amount","ok","at"\n' + CSV_ROWS, after_line=4), True),
    "csv_small_limit_resume": (csv(HEADER + CSV_ROWS, after_line=4, max_record_bytes=1000), False),
    "csv_shorter_than_its_bookmark": (csv(HEADER + CSV_ROWS, after_line=9), False),
    "csv_bad_line_after_a_fast_chunk": (csv(BIG_CSV, max_record_bytes=65536), False),
    "jsonl": (jsonl(JSON_ROWS), True),
    "jsonl_crlf": (jsonl(JSON_ROWS.replace("\n", "\r\n")), True),
    "jsonl_bom": (jsonl("\ufeff" + JSON_ROWS), True),
    "jsonl_missing_keys": (jsonl('{"id": "a"}\n{"n": 2}\n{}\n'), True),
    "jsonl_duplicate_key": (jsonl('{"n": 1, "n": 2}\n'), True),
    "jsonl_escapes": (jsonl('{"id": "\\u00e9\\n\\"x"}\n'), True),
    "jsonl_resume": (jsonl(JSON_ROWS, after_line=3), True),
    "jsonl_blank_line": (jsonl(JSON_ROWS + "  \n" + JSON_ROWS), False),
    "jsonl_two_values": (jsonl('{"id": "a"}, {"id": "b"}\n'), False),
    "jsonl_not_an_object": (jsonl('{"id": "a"}\n[1]\n'), False),
    "jsonl_null_line": (jsonl('{"id": "a"}\nnull\n'), False),
    "jsonl_undeclared_key": (jsonl('{"id": "a", "zz": 1}\n'), False),
    "jsonl_nested": (jsonl('{"id": {"a": 1}}\n'), False),
    "jsonl_lone_surrogate": (jsonl('{"id": "\\ud800"}\n'), False),
    "jsonl_nan": (jsonl('{"x": NaN}\n', {"x": "number"}), False),
    "jsonl_unfinished_last_line": (jsonl(JSON_ROWS + '{"id": '), False),
}


def read_both(cases: list[dict]) -> list[dict]:
    """Each case (`data`: text, written as UTF-8, or bytes) read by both readers in tap-landing's venv."""
    python = environment.MELTANO_PROJECT_DIR / ".meltano/extractors/tap-landing/venv/bin/python"
    sent = []
    for case in cases:
        data = case["data"] if isinstance(case["data"], bytes) else case["data"].encode()
        sent.append({**case, "data": base64.b64encode(data).decode()})
    completed = subprocess.run(
        [str(python), str(CHECKER)], input=json.dumps(sent), capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout)


def assert_same_as_line_reader(case: dict, result: dict) -> None:
    """What the fast reader read is what the line reader read first; read to the end, it read it all; and
    the tap's bulk reading (fast, then line by line where the fast reader stopped) is the line reader's."""
    fast, line = result["fast"], result["line"]
    assert fast == line[: len(fast)], f"{case}: fast {fast} vs line reader {line}"
    if result["complete"]:
        assert result["error"] is None and len(fast) == len(line), f"{case}: {result}"
    assert (result["bulk"], result["bulk_error"]) == (line, result["error"]), f"{case}: {result}"


@pytest.fixture(scope="module")
def installed(meltano_plugins):
    return meltano_plugins


def test_every_typed_value_reads_as_the_line_reader_reads_it(installed):
    rng = random.Random(15)
    cases = []
    for kind, values in TEXT_VALUES.items():
        for value in [FAST_TEXT[kind], *values, *generated_values(kind, 150, rng)]:
            cases += [csv_case(kind, value), jsonl_case(kind, value)]
        cases += [jsonl_case(kind, value) for value in [*JSON_VALUES, FAST_JSON.get(kind)]]
    results = read_both(cases)
    for case, result in zip(cases, results, strict=True):
        assert_same_as_line_reader(case, result)
    pairs = list(zip(cases, results, strict=True))
    fast = {(case["format"], case["data"]) for case, result in pairs if result["complete"]}
    for kind, value in FAST_TEXT.items():
        assert ("csv", csv_case(kind, value)["data"]) in fast, (kind, value)
        assert ("jsonl", jsonl_case(kind, value)["data"]) in fast, (kind, value)
    for kind, value in FAST_JSON.items():
        assert ("jsonl", jsonl_case(kind, value)["data"]) in fast, (kind, value)
    # Not trivial: the generated values hold many the line reader refuses, and of those it accepts the
    # fast reader takes most.
    accepted = sum(result["error"] is None for result in results)
    taken = sum(result["complete"] for result in results)
    assert len(cases) - accepted > len(cases) / 3 and taken > accepted / 2, (taken, accepted, len(cases))


def test_file_shapes_read_as_the_line_reader_reads_them(installed):
    names = list(SHAPES)
    results = read_both([SHAPES[name][0] for name in names])
    for name, result in zip(names, results, strict=True):
        case, must_be_fast = SHAPES[name]
        assert_same_as_line_reader(case, result)
        assert result["complete"] is must_be_fast, f"{name}: {result['why']}"
    by_name = dict(zip(names, results, strict=True))
    # After the first chunk read fast, the bad line is the line reader's to name; the fast reader stopped
    # at a chunk boundary before it.
    big = by_name["csv_bad_line_after_a_fast_chunk"]
    assert 1000 < len(big["fast"]) < 2499 and big["fast"][0][0] == 2
    assert "line 2500: column 'n': 'not-a-number' is not a valid integer" in big["error"]
    assert len(big["line"]) == 2498
    assert [row[0] for row in by_name["csv_resume"]["fast"]] == [5, 6, 7]
    assert [row[0] for row in by_name["jsonl_resume"]["fast"]] == [4, 5, 6]
