"""Bootstrap intervals and the worst-images mean (segqc.checks.statistics.bootstrap).

References: ``stardist.matching.matching_dataset`` for re-pooled replicates; hand-computed
cases; and simulation where the true pooled value is known by construction (coverage).
"""

from __future__ import annotations

import numpy as np
import pytest
from stardist.matching import matching_dataset

from segqc.checks.statistics.bootstrap import (
    Interval,
    bootstrap_intervals,
    count_matrix,
    paired_delta_intervals,
    pooled_from_sums,
    pooled_replicates,
    resample_weights,
    worst_images,
)
from segqc.metrics.catalogue import METRIC_KEYS
from segqc.metrics.scores import measure, pool
from tests.unit.counts import scores_from_counts


def random_label_pairs(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Small label images with shifted, dropped and spurious squares."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        true = np.zeros((40, 40), np.uint16)
        pred = np.zeros((40, 40), np.uint16)
        for k in range(int(rng.integers(0, 5))):
            r, c = 2 + 9 * (k // 4), 2 + 9 * (k % 4)
            true[r : r + 6, c : c + 6] = k + 1
            if rng.random() < 0.8:
                dr, dc = rng.integers(-2, 3, size=2)
                pred[r + dr : r + dr + 6, c + dc : c + dc + 6] = k + 1
        if rng.random() < 0.5:
            pred[30:36, 30:36] = 9
        pairs.append((true, pred))
    return pairs


def test_replicates_repool_like_stardist_matching_dataset():
    pairs = random_label_pairs(7, seed=3)
    scores = [measure(t, p, iou_threshold=0.5) for t, p in pairs]
    weights = resample_weights(len(pairs), n=5, seed=11)
    pooled = pooled_replicates(scores, weights)
    for b, row in enumerate(weights):
        drawn = [pairs[i] for i, count in enumerate(row) for _ in range(count)]
        reference = matching_dataset(
            [t for t, _ in drawn], [p for _, p in drawn], thresh=0.5, show_progress=False
        )
        for key in ("tp", "fp", "fn", "precision", "recall", "accuracy", "f1", "n_true"):
            assert pooled[key][b] == pytest.approx(getattr(reference, key), abs=1e-12), key
        for key in ("mean_true_score", "mean_matched_score", "panoptic_quality"):
            assert pooled[key][b] == pytest.approx(getattr(reference, key), rel=1e-6), key
        # and every metric (community ones included) as segqc's own pool() gives it
        repooled = pool([s for s, k in zip(scores, row, strict=True) for _ in range(k)]).values()
        for key in METRIC_KEYS:
            assert pooled[key][b] == pytest.approx(repooled[key], rel=1e-6, abs=1e-12), key


def test_pooled_counts_only_formulas():
    pairs = random_label_pairs(5, seed=8)
    scores = [measure(t, p, iou_threshold=0.5) for t, p in pairs]
    sums = count_matrix(scores).sum(axis=0)
    expected = pool(scores).values()
    for key, value in pooled_from_sums(sums).items():
        assert float(value) == pytest.approx(expected[key], rel=1e-6, abs=1e-12), key


def test_pooled_zero_conventions():
    sums = np.array([[0, 3, 2, 2, 3, 0, 0, 0.0]])  # tp = 0, both masks empty
    pooled = pooled_from_sums(sums)
    assert pooled["f1"][0] == 0.0 and pooled["precision"][0] == 0.0
    assert pooled["pixel_iou"][0] == 1.0


def test_resample_weights_count_draws_and_are_seeded():
    weights = resample_weights(6, n=50, seed=1)
    assert weights.shape == (50, 6) and (weights.sum(axis=1) == 6).all()
    assert (resample_weights(6, n=50, seed=1) == weights).all()
    assert (resample_weights(6, n=50, seed=2) != weights).any()


def test_same_seed_gives_identical_intervals():
    rng = np.random.default_rng(0)
    scores = [scores_from_counts(*rng.integers(1, 20, size=3)) for _ in range(12)]
    first = bootstrap_intervals(scores, n=300, seed=5)
    again = bootstrap_intervals(scores, n=300, seed=5)
    other = bootstrap_intervals(scores, n=300, seed=6)
    assert first == again
    assert first != other
    f1 = first["aggregate"]["f1"]
    assert f1.low <= f1.value <= f1.high and f1.low < f1.high


def test_identical_images_give_a_zero_width_interval():
    scores = [scores_from_counts(8, 2, 2)] * 5
    interval = bootstrap_intervals(scores, n=200)["aggregate"]["f1"]
    assert interval.low == interval.high == pytest.approx(16 / 20)


def test_percentile_interval_coverage_on_a_known_population():
    """95 % intervals of pooled f1 contain the true value in roughly 95 % of datasets.

    Population: each image has n_true = 5 + Poisson(15) objects, each found with
    probability 0.8, and Poisson(3) false positives. The population's pooled f1 is
    2 E[tp] / (2 E[tp] + E[fp] + E[fn]) = 32 / 39.
    """
    truth = 32 / 39
    rng = np.random.default_rng(2024)
    repetitions, hits = 200, 0
    for rep in range(repetitions):
        n_true = 5 + rng.poisson(15, size=20)
        tp = rng.binomial(n_true, 0.8)
        fp = rng.poisson(3, size=20)
        scores = [
            scores_from_counts(int(t), int(f), int(n - t))
            for t, f, n in zip(tp, fp, n_true, strict=True)
        ]
        interval = bootstrap_intervals(scores, n=400, confidence=0.95, seed=rep)["aggregate"]
        hits += interval["f1"].low <= truth <= interval["f1"].high
    assert 0.88 <= hits / repetitions <= 0.99


def test_paired_delta_detects_real_drops_and_rarely_invents_them():
    """Same population for both models: few significant drops; a real recall drop of
    0.15: nearly always significant."""
    rng = np.random.default_rng(7)
    false_alarms = detected = 0
    repetitions = 100
    for rep in range(repetitions):
        n_true = 5 + rng.poisson(15, size=15)
        old_tp = rng.binomial(n_true, 0.8)
        same_tp = rng.binomial(n_true, 0.8)
        worse_tp = rng.binomial(n_true, 0.65)
        old = [
            scores_from_counts(int(t), 1, int(n - t)) for t, n in zip(old_tp, n_true, strict=True)
        ]
        same = [
            scores_from_counts(int(t), 1, int(n - t)) for t, n in zip(same_tp, n_true, strict=True)
        ]
        worse = [
            scores_from_counts(int(t), 1, int(n - t)) for t, n in zip(worse_tp, n_true, strict=True)
        ]
        null = paired_delta_intervals(old, same, n=300, seed=rep)["aggregate"]["recall"]
        drop = paired_delta_intervals(old, worse, n=300, seed=rep)["aggregate"]["recall"]
        false_alarms += null.high < 0
        detected += drop.high < 0
    assert false_alarms / repetitions <= 0.06
    assert detected / repetitions >= 0.9


def test_paired_delta_of_a_model_with_itself_is_exactly_zero():
    scores = [scores_from_counts(t, 1, 3) for t in (5, 9, 2, 7)]
    delta = paired_delta_intervals(scores, scores, n=200)["aggregate"]["f1"]
    assert (delta.value, delta.low, delta.high) == (0.0, 0.0, 0.0)
    assert not delta.excludes_zero()


def test_paired_delta_value_is_the_observed_difference():
    old = [scores_from_counts(10, 0, 0), scores_from_counts(10, 0, 0)]
    new = [scores_from_counts(10, 0, 0), scores_from_counts(6, 0, 4)]
    delta = paired_delta_intervals(old, new, n=200)["aggregate"]["recall"]
    assert delta.value == pytest.approx(16 / 20 - 1)
    assert delta.low == pytest.approx(12 / 20 - 1) and delta.high == 0.0


def test_interval_flip():
    assert Interval(0.1, -0.2, 0.3).flipped() == Interval(-0.1, -0.3, 0.2)
    assert Interval(0.1, 0.05, 0.3).excludes_zero()


@pytest.mark.parametrize(
    ("fraction", "better", "mean", "names"),
    [
        (0.1, "higher", 0.5, ["b"]),
        (0.5, "higher", 0.7, ["b", "c"]),
        (1.0, "higher", 0.8, ["b", "c", "a"]),
        (0.34, "lower", 0.95, ["a", "c"]),
    ],
)
def test_worst_images_mean(fraction, better, mean, names):
    values = [("a", 1.0), ("b", 0.5), ("c", 0.9)]
    got_mean, got_names = worst_images(values, fraction=fraction, better=better)
    assert got_mean == pytest.approx(mean)
    assert got_names == names


def test_worst_images_ties_broken_by_name():
    assert worst_images([("z", 0.5), ("a", 0.5)], fraction=0.1, better="higher")[1] == ["a"]


@pytest.mark.parametrize("n_images", [1, 3, 1001, 5000])
def test_replicates_drawn_by_blocks_are_the_one_shot_draw(n_images):
    """Drawn a block at a time (bounded memory), the replicates are exactly those of one
    numpy draw of every replicate at once, so the intervals do not depend on blocks."""
    from segqc.checks.statistics.bootstrap import weight_blocks

    blocks = list(weight_blocks(n_images, n=1000, seed=3))
    assert len(blocks) > 1 or n_images < 1100
    indices = np.random.default_rng(3).integers(0, n_images, size=(1000, n_images))
    expected = np.stack([np.bincount(row, minlength=n_images) for row in indices])
    assert np.array_equal(np.concatenate(blocks), expected)
