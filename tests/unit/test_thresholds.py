"""thresholds.yaml: the bundled file, the schema and the error messages."""

import pytest

from segqc.metrics.catalogue import METRIC_KEYS
from segqc.thresholds import ThresholdsError, bundled_thresholds_path, load_thresholds


def test_bundled_file_is_valid_and_documents_every_metric():
    loaded = load_thresholds(bundled_thresholds_path())
    assert loaded.thresholds.matching.iou_threshold == 0.5
    assert loaded.thresholds.limits("per_image")["f1"].min == 0.7
    for key in METRIC_KEYS:
        assert key in loaded.text, f"bundled thresholds.yaml does not document {key}"


def test_full_example_from_the_docs(thresholds_file):
    loaded = load_thresholds(
        thresholds_file(
            """
matching:
  iou_threshold: 0.6
prediction:
  prob_thresh: 0.4
  nms_thresh: null
per_image:
  f1: {min: 0.7}
  panoptic_quality: {min: 0.5, level: warn}
  fp: {max: 3}
aggregate:
  f1: {min: 0.8, max: 1}
image_mean:
  pixel_iou: {min: 0.7}
"""
        )
    )
    t = loaded.thresholds
    assert t.matching.iou_threshold == 0.6
    assert t.prediction.prob_thresh == 0.4 and t.prediction.nms_thresh is None
    assert set(t.limits("per_image")) == {"f1", "panoptic_quality", "fp"}
    assert t.limits("per_image")["panoptic_quality"].level == "warn"
    assert t.limits("per_image")["fp"].max == 3
    assert t.limits("aggregate")["f1"].level == "fail"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "per_image:\n  f1_score: {min: 0.7}\n",
            r"per_image\.f1_score: unknown metric; did you mean 'f1'\?",
        ),
        ("per_imag:\n  f1: {min: 0.7}\n", r"per_imag: unknown section; did you mean 'per_image'\?"),
        ("matching:\n  iou: 0.5\n", r"matching\.iou: unknown key; did you mean 'iou_threshold'\?"),
        (
            "per_image:\n  f1: {min: high}\n",
            r"per_image\.f1\.min: Input should be a valid number.*'high'",
        ),
        ("per_image:\n  f1: {min: 1.5}\n", r"per_image\.f1\.min: .*less than or equal to 1"),
        ("per_image:\n  fp: {max: -1}\n", r"per_image\.fp\.max: .*greater than or equal to 0"),
        (
            "per_image:\n  f1: {min: 0.9, max: 0.5}\n",
            r"per_image\.f1: min \(0\.9\) is greater than max \(0\.5\)",
        ),
        ("per_image:\n  f1: {level: warn}\n", r"per_image\.f1: a limit needs 'min' and/or 'max'"),
        (
            "per_image:\n  f1: {min: 0.7, level: error}\n",
            r"per_image\.f1\.level: Input should be 'fail' or 'warn'",
        ),
        ("per_image:\n  f1: 0.7\n", r"per_image\.f1: expected a mapping, got 0\.7"),
        (
            "matching:\n  iou_threshold: 0\n",
            r"matching\.iou_threshold: Input should be greater than 0",
        ),
        ("prediction:\n  prob_thresh: 2\n", r"prediction\.prob_thresh: .*less than or equal to 1"),
        ("- f1\n", r"expected a mapping of sections"),
        ("", r"the file is empty"),
        ("# only a comment\n", r"the file is empty"),
        ("per_image:\n  f1: {min: 0.7\n  pq: 1\n", r"limits\.yaml:\d+:\d+: YAML syntax error"),
        ("per_image:\n  f1: {min: !!python/object:os.system 1}\n", r"YAML syntax error"),
    ],
)
def test_invalid_files_name_file_key_and_problem(thresholds_file, text, message):
    path = thresholds_file(text)
    with pytest.raises(ThresholdsError, match=message) as caught:
        load_thresholds(path)
    assert str(caught.value).startswith(str(path))


def test_all_problems_are_listed_together(thresholds_file):
    path = thresholds_file("per_image:\n  f1_score: {min: 0.7}\n  recall: {min: 2}\naggregat: {}\n")
    with pytest.raises(ThresholdsError) as caught:
        load_thresholds(path)
    assert len(str(caught.value).splitlines()) == 3


def test_yaml_error_points_at_line_and_column(thresholds_file):
    path = thresholds_file("per_image:\n  f1: {min: 0.7}\n bad: [\n")
    with pytest.raises(ThresholdsError, match=rf"{path}:3:\d+: YAML syntax error"):
        load_thresholds(path)


def test_missing_explicit_file(tmp_path):
    with pytest.raises(ThresholdsError, match="file not found"):
        load_thresholds(tmp_path / "nope.yaml")


@pytest.mark.parametrize("metric", ["seg", "aji", "dsb_score", "sq", "rq"])
def test_aggregate_at_refuses_metrics_measured_only_at_the_matching_threshold(
    thresholds_file, metric
):
    """The accuracy curve computes the matching metrics at other thresholds; a limit on
    a community metric there could only ever fail (as NaN)."""
    path = thresholds_file(f"aggregate_at:\n  0.7:\n    {metric}: {{min: 0.5}}\n")
    with pytest.raises(
        ThresholdsError,
        match=rf"aggregate_at: 0\.7\.{metric}: {metric} is measured at matching\.iou_threshold "
        r"only; limit it under 'aggregate'",
    ):
        load_thresholds(path)
