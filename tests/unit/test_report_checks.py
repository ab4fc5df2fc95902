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
        "device_agreement": None,
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


def test_device_agreement_lists_images_with_broken_limits_first_then_the_largest_mismatches():
    def image(name, ppm, error=None):
        return {"name": name, "device": "CPU", "error": error,
                "mismatched_pixels_per_million": ppm,
                "largest_metric_difference": None if ppm is None else ppm / 1e4,
                "largest_metric": "f1"}  # fmt: skip

    record = {
        "device": "GPU (A100)",
        "compare_device": "cpu",
        "limits": {"mismatched_pixels_per_million": {"max": 100.0, "level": "fail"},
                   "metric_difference": {"max": 0.01, "level": "fail"}},
        "n_images": 4,
        "images": [image("a.tif", 5.0), image("b.tif", 0.0), image("c.tif", 40.0),
                   image("d.tif", None, error="d.tif: second prediction failed (boom)")],
        "verdicts": [
            {"subject": "d.tif", "outcome": "fail", "message": "d.tif: no second prediction"},
            {"subject": "a.tif", "outcome": "pass", "message": "a.tif: within limits"},
        ],
    }  # fmt: skip
    section = check_sections({"device_agreement": record})["device_agreement"]
    assert [row["name"] for row in section["rows"]] == ["d.tif", "c.tif", "a.tif", "b.tif"]
    assert [row["passed"] for row in section["rows"]] == [False, True, True, True]
    assert section["rows"][0]["error"] == "d.tif: second prediction failed (boom)"
    assert section["rows"][1]["ppm"] == "40"
    assert (section["ppm_limit"], section["difference_limit"]) == ("100", "0.01")
    assert [row["metric"] for row in section["rows"]] == ["–", "f1", "f1", "–"]
    assert [v["subject"] for v in section["broken"]] == ["d.tif"]
    assert section["device"] == "GPU (A100)" and section["more"] == 0
