"""Safe writes: summary.json's JSON text, and files replaced only when complete."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from segqc.data.writing import OutputError, write_json


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
