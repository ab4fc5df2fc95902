"""Safe writes: summary.json's JSON text, and files replaced only when complete."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from segqc.data.writing import OutputError, atomic_write_lines, write_json
from segqc.outputs.summary import Records


def test_write_json_writes_what_json_dumps_writes_with_nan_as_null(tmp_path):
    document = {
        "status": "passed",
        "name": 'ça.tif \u2265 "quoted"\n',
        "empty": {},
        "none": [],
        "values": [1, 2.5, -0.0, 1e-300, True, False, None],
        "nested": {"a": [{"b": []}, [[]], {"c": {"d": 3}}], 7: "int key"},
        "not finite": [math.nan, math.inf, -math.inf],
        "numpy": [np.float32(0.25), np.int64(7), np.bool_(True), np.float64(math.nan)],
        "path": Path("/data/qc/a.tif"),
        "tuple": (1, "two"),
    }
    expected = {
        "status": "passed",
        "name": 'ça.tif \u2265 "quoted"\n',
        "empty": {},
        "none": [],
        "values": [1, 2.5, -0.0, 1e-300, True, False, None],
        "nested": {"a": [{"b": []}, [[]], {"c": {"d": 3}}], "7": "int key"},
        "not finite": [None, None, None],
        "numpy": [0.25, 7, True, None],
        "path": "/data/qc/a.tif",
        "tuple": [1, "two"],
    }
    path = write_json(tmp_path / "summary.json", document)
    assert path.read_text(encoding="utf-8") == json.dumps(expected, indent=2) + "\n"


def test_write_json_of_an_unknown_type_leaves_the_earlier_file(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text('{"earlier": true}\n')
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        write_json(path, {"images": [1, 2], "bad": object()})
    assert path.read_text() == '{"earlier": true}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary file


def test_a_write_that_cannot_happen_is_an_output_error_naming_the_file(tmp_path):
    (tmp_path / "out").write_text("a file where a folder should be")
    with pytest.raises(OutputError, match=r"out/summary\.json: cannot write"):
        write_json(tmp_path / "out" / "summary.json", {"status": "passed"})


def test_records_built_when_read_are_written_as_the_lists_they_read_as(tmp_path):
    images = [{"name": f"{i}.tif", "metrics": {"f1": i / 3, "nan": math.nan}} for i in range(3)]
    document = {
        "images": Records(lambda: iter(images), len(images)),
        "limits": Records(lambda: (dict(v) for v in [{"outcome": "pass"}, {"outcome": "fail"}])),
        "none": Records(lambda: iter([])),
        "nested": {"records": Records(lambda: iter([{"a": 1}]))},
    }
    expected = {
        "images": [{"name": i["name"], "metrics": {"f1": i["metrics"]["f1"], "nan": None}}
                   for i in images],
        "limits": [{"outcome": "pass"}, {"outcome": "fail"}],
        "none": [],
        "nested": {"records": [{"a": 1}]},
    }  # fmt: skip
    path = write_json(tmp_path / "summary.json", document)
    assert path.read_text(encoding="utf-8") == json.dumps(expected, indent=2) + "\n"


def test_lines_written_one_at_a_time_replace_the_file_only_when_all_were_written(tmp_path):
    path = tmp_path / "metrics.csv"
    assert atomic_write_lines(path, iter(["image,f1\n", "a.tif,0.5\n"])).read_text() == (
        "image,f1\na.tif,0.5\n"
    )

    def broken_rows():
        yield "image,f1\n"
        raise OutputError(f"{path}: cannot write (a row could not be read)")

    with pytest.raises(OutputError, match="a row could not be read"):
        atomic_write_lines(path, broken_rows())
    assert path.read_text() == "image,f1\na.tif,0.5\n"  # the earlier table, whole
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]  # no temporary file
