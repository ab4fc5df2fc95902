"""The report's optional check sections, built from hand-written summary.json fragments."""

from segqc.report.sections import check_sections


def test_sections_are_absent_when_their_checks_did_not_run():
    sections = check_sections({"robustness": None, "leakage": None, "subgroups": None})
    assert sections == {
        "regression": None,
        "statistics": None,
        "robustness": None,
        "leakage": None,
        "subgroups": None,
    }


def test_robustness_grid_shows_the_limited_metric_change_per_image_and_perturbation():
    summary = {
        "robustness": {
            "perturbations": ["flip-y", "intensity_scale-x2"],
            "results": [
                {"perturbation": "flip-y", "image": "b.tif", "drop": {"f1": 0.25, "recall": 0.5},
                 "max_drop": {"f1": 0.05}, "passed": False, "error": None},
                {"perturbation": "intensity_scale-x2", "image": "b.tif", "drop": {"f1": -0.125},
                 "max_drop": {"f1": 0.05}, "passed": True, "error": None},
                {"perturbation": "flip-y", "image": "a.tif", "drop": {"f1": 0.0},
                 "max_drop": {"f1": 0.05}, "passed": True, "error": None},
            ],
        }
    }  # fmt: skip
    grid = check_sections(summary)["robustness"]
    assert grid["perturbations"] == ["flip-y", "intensity_scale-x2"]
    assert [row["image"] for row in grid["rows"]] == ["a.tif", "b.tif"]
    a_row, b_row = grid["rows"]
    assert a_row["cells"][1] is None  # a.tif was not perturbed by intensity_scale-x2
    assert b_row["cells"][0] == {"text": "f1 −0.250", "passed": False}  # only limited metrics
    assert b_row["cells"][1] == {"text": "f1 +0.125", "passed": True}


def test_subgroup_tables_list_values_and_broken_limits():
    broken = {"outcome": "fail", "message": "small objects: recall = 0.5 < min 0.9"}
    summary = {
        "subgroups": {
            "object_size": [
                {"bin": "small", "min_area": 0, "max_area": 50, "values": {"recall": 0.5},
                 "limits": [broken]},
                {"bin": "large", "min_area": 50, "max_area": None, "values": {"recall": 1.0},
                 "limits": [{"outcome": "pass", "message": "ok"}]},
            ],
            "image_groups": [],
        }
    }  # fmt: skip
    [sizes, groups] = check_sections(summary)["subgroups"]["tables"]
    assert sizes["metrics"] == ["recall"]
    assert [(r["name"], r["extra"], r["cells"]) for r in sizes["rows"]] == [
        ("small", "area 0–50 px", ["0.500"]),
        ("large", "area 50–∞ px", ["1"]),
    ]
    assert sizes["rows"][0]["broken"] == [broken] and sizes["rows"][1]["broken"] == []
    assert groups["rows"] == []
