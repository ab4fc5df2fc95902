"""Subgroups: size bins and image groups, with hand-computed numbers.

Each image holds 4 small squares (4 x 4 = 16 px) and 4 large ones (12 x 12 = 144 px).
With edges [50, 100]: small = area < 50, medium = 50..100 (empty), large = area >= 100.
The degraded prediction misses the small squares and cuts the large ones to 10 x 12
(IoU 120 / 144).
"""

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from segqc.checks.subgroups.grouping import (
    GroupsFileError,
    image_group_outcomes,
    read_groups_file,
    size_bin_outcomes,
    size_bin_values,
)
from segqc.data.pairing import QcPair
from segqc.metrics.object_matches import area_bins, match_objects, pool_area_bins
from segqc.metrics.scores import measure
from segqc.pipeline.outcome import ImageOutcome
from segqc.thresholds import Thresholds
from tests.helpers import SUBGROUP_LIMITS, squares

EDGES = (50.0, 100.0)


def degraded():
    return squares(small=False, large_height=10)


def test_area_bins_of_one_image_by_hand():
    bins = area_bins(match_objects(squares(), degraded()), EDGES)
    assert bins.edges == EDGES
    assert (bins.n_true, bins.tp) == ((4, 0, 4), (0, 0, 4))
    assert bins.iou_sum == pytest.approx((0.0, 0.0, 4 * 120 / 144))


def test_an_area_on_an_edge_belongs_to_the_bin_above():
    labels = np.zeros((20, 20), np.uint16)
    labels[0:5, 0:10] = 1  # 50 px: exactly the first edge
    labels[10:20, 0:10] = 2  # 100 px: exactly the second
    assert area_bins(match_objects(labels, labels), EDGES).n_true == (0, 1, 1)


def test_size_bin_values_by_hand():
    truth = squares()
    pooled = pool_area_bins(
        [
            area_bins(match_objects(truth, truth), EDGES),
            area_bins(match_objects(truth, degraded()), EDGES),
        ],
        EDGES,
    )
    small, medium, large = size_bin_values(pooled)
    assert (small["n_true"], small["tp"], small["fn"]) == (8, 4, 4)
    assert small["recall"] == 0.5 and small["mean_matched_score"] == 1.0
    assert small["mean_true_score"] == 0.5
    assert medium["n_true"] == 0 and math.isnan(medium["recall"])
    assert math.isnan(medium["mean_matched_score"]) and math.isnan(medium["mean_true_score"])
    assert (large["n_true"], large["tp"]) == (8, 8)
    assert large["mean_matched_score"] == pytest.approx((4 * 1 + 4 * 120 / 144) / 8)


def test_bins_counted_with_other_edges_are_not_pooled():
    bins = area_bins(match_objects(squares(), squares()), EDGES)
    with pytest.raises(ValueError, match=r"counted with edges \(50\.0, 100\.0\)"):
        pool_area_bins([bins], [50.0, 200.0])


def outcome(name, truth, prediction, *, group=None, edges=EDGES):
    """An evaluated image, as evaluate_image would give it."""
    bins = area_bins(match_objects(truth, prediction), edges)
    pair = QcPair(name, None, Path(name), group)
    return ImageOutcome(pair, scores=measure(truth, prediction), area_bins=bins)


def settings(text=SUBGROUP_LIMITS):
    return Thresholds.model_validate(yaml.safe_load(text)).subgroups


def test_size_bins_fail_where_the_average_passes():
    outcomes = [
        outcome("a1.tif", squares(), squares()),
        outcome("a2.tif", squares(), squares()),
        outcome("b1.tif", squares(), degraded()),
        ImageOutcome(
            QcPair("broken.tif", None, Path("broken.tif")), error="broken.tif: unreadable"
        ),
    ]
    small, medium, large = size_bin_outcomes(outcomes, settings().object_size)
    assert [b.name for b in (small, medium, large)] == ["small", "medium", "large"]
    assert (small.min_area, small.max_area, large.min_area, large.max_area) == (None, 50, 100, None)
    # pooled: small recall 8 of 12; large IoU (8 * 1 + 4 * 120/144) / 12
    assert small.values["recall"] == pytest.approx(8 / 12)
    (verdict,) = small.verdicts
    assert verdict.message == (
        "small objects (area < 50): recall = 0.6667 < min 0.9 (off by 0.2333; "
        "thresholds.yaml subgroups.object_size.limits.recall.min)"
    )
    assert medium.label == "medium objects (50 <= area < 100)" and medium.verdicts == []
    assert [(v.key, v.outcome) for v in large.verdicts] == [
        ("subgroups.object_size.limits.recall", "pass"),
        ("subgroups.object_size.by_bin.large.mean_matched_score.min", "fail"),
    ]
    assert large.verdicts[1].message.startswith(
        "large objects (area >= 100): mean_matched_score = 0.9444 < min 0.95"
    )


def test_image_groups_pool_their_images():
    outcomes = [
        outcome("condA/a1.tif", squares(), squares(), group="condA"),
        outcome("condB/b1.tif", squares(), degraded(), group="condB"),
        outcome("condA/a2.tif", squares(), squares(), group="condA"),
        ImageOutcome(
            QcPair("condC/c1.tif", None, Path("c1.tif"), "condC"), error="c1.tif: unreadable"
        ),
        outcome("ungrouped.tif", squares(), degraded()),
    ]
    a, b, c = image_group_outcomes(outcomes, settings().image_groups)
    assert (a.name, a.images, a.n_evaluated) == ("condA", ["condA/a1.tif", "condA/a2.tif"], 2)
    assert a.values["f1"] == 1.0 and [v.outcome for v in a.verdicts] == ["pass"]
    # condB: tp 4 (the large squares at IoU 0.83), fn 4, fp 0 -> f1 = 8 / 12
    assert b.values["f1"] == pytest.approx(8 / 12)
    (verdict,) = b.verdicts
    assert verdict.message == (
        "group condB: f1 = 0.6667 < min 0.9 (off by 0.2333; "
        "thresholds.yaml subgroups.image_groups.limits.f1.min)"
    )
    assert (c.name, c.n_evaluated, c.values, c.verdicts) == ("condC", 0, None, [])


def test_a_group_of_its_own_limits_is_named_by_its_key():
    text = SUBGROUP_LIMITS + "    by_group:\n      condB: {f1: {min: 0.5}}\n"
    outcomes = [outcome("b1.tif", squares(), degraded(), group="condB")]
    (group,) = image_group_outcomes(outcomes, settings(text).image_groups)
    (verdict,) = group.verdicts
    assert (verdict.key, verdict.outcome) == ("subgroups.image_groups.by_group.condB.f1", "pass")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("image,condition\na.tif,x\n", "expected a CSV with a header row 'image,group'"),
        ("image,group\na.tif,x\na.tif,y\n", "a.tif is listed twice"),
        ("image,group\na.tif,\n", "empty image or group"),
    ],
)
def test_groups_file_problems(tmp_path, text, message):
    path = tmp_path / "g.csv"
    path.write_text(text)
    with pytest.raises(GroupsFileError, match=message):
        read_groups_file(path, ["a.tif"])


def test_bundled_commented_example_of_the_optional_checks_is_valid():
    import yaml

    from segqc.thresholds import Thresholds, bundled_thresholds_path

    tail = bundled_thresholds_path().read_text().split("# --- optional checks")[1]
    lines = tail.splitlines()[2:]
    body = "\n".join(line[2:] if line.startswith("# ") else "" for line in lines)
    parsed = Thresholds.model_validate(yaml.safe_load(body))
    assert parsed.robustness is not None and parsed.robustness.rot90.k == [1, 2, 3]
    assert parsed.subgroups.object_size.bin_limits("small")["recall"].min == 0.5
