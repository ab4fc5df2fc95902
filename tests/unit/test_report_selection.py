"""Which images get pictures in the report (segqc.report.selection), by hand."""

import math

import pytest

from segqc.report.selection import PanelPlan, worst_images
from segqc.settings import ReportImages, SettingsError
from segqc.thresholds.schema import Limit

NAMES = [f"img{i:03d}.tif" for i in range(300)]


def test_up_to_200_images_every_image_is_drawn():
    plan = PanelPlan.for_images(NAMES[:200], ReportImages())
    assert plan.every_image and plan.n_worst == 0 and plan.sample == frozenset()
    assert all(plan.reason(name, "pass") == "" for name in NAMES[:200])


def test_above_200_failed_warned_and_a_seeded_sample_are_drawn():
    plan = PanelPlan.for_images(NAMES, ReportImages())
    assert not plan.every_image and plan.n_worst == 50
    assert len(plan.sample) == 50 and plan.sample <= set(NAMES)
    assert plan.sample == PanelPlan.for_images(NAMES, ReportImages()).sample  # seeded
    passing = [name for name in NAMES if name not in plan.sample]
    assert plan.reason(passing[0], "fail") == "failed"
    assert plan.reason(passing[0], "warn") == "warned"
    assert plan.reason(passing[0], "pass") is None
    assert plan.reason(sorted(plan.sample)[0], "pass") == "seeded sample"


@pytest.mark.parametrize(
    ("text", "mode", "worst", "every", "n_worst"),
    [
        ("all", "all", 50, True, 0),
        ("failed", "failed", 50, False, 0),
        ("worst:7", "worst", 7, False, 7),
        ("auto", "auto", 50, False, 50),
    ],
)
def test_report_images_option(text, mode, worst, every, n_worst):
    images = ReportImages.parse(text)
    assert (images.mode, images.worst) == (mode, worst)
    plan = PanelPlan.for_images(NAMES, images)
    assert (plan.every_image, plan.n_worst) == (every, n_worst)
    failed = plan.reason(NAMES[0], "fail")
    assert (failed is not None) == (mode in ("all", "auto", "failed"))


@pytest.mark.parametrize("text", ["worst:0", "worst", "some", "worst:-1"])
def test_report_images_option_refuses_other_values(text):
    with pytest.raises(SettingsError, match=r"--report-images .*: expected auto, all, failed"):
        ReportImages.parse(text)


def test_worst_images_rank_by_the_smallest_margin_to_a_per_image_limit():
    values = {
        "a.tif": {"f1": 0.95, "fp": 0.0},
        "b.tif": {"f1": 0.72, "fp": 1.0},  # f1 margin 0.02
        "c.tif": {"f1": 0.90, "fp": 9.0},  # fp margin (4 - 9) / 4 = -1.25: the worst
        "d.tif": {"f1": 0.60, "fp": 0.0},  # f1 margin -0.1
    }
    limits = {"f1": Limit(min=0.7), "fp": Limit(max=4)}
    ranked = worst_images(values.items(), limits, 3)
    assert [name for name, _ in ranked] == ["c.tif", "d.tif", "b.tif"]
    assert ranked[0][1] == "worst #1 (fp 9)" and ranked[1][1] == "worst #2 (f1 0.6)"


def test_without_per_image_limits_the_worst_images_are_those_of_lowest_f1():
    values = [("a.tif", {"f1": 0.5}), ("b.tif", {"f1": 0.1}), ("c.tif", {"f1": math.nan})]
    assert [name for name, _ in worst_images(values, {}, 1)] == ["b.tif"]
