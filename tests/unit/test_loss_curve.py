"""Loss-curve checks on synthetic histories whose verdicts and numbers are worked out by hand.

Smoothing is the trailing moving median of 5 epochs (the default), so on a monotone
stretch the smoothed value at epoch e is the raw value at epoch e - 2.
"""

from pathlib import Path

import numpy as np
import pytest

from segqc.checks.loss.convergence import (
    LOSS_CHECKS,
    LossCurveSettings,
    check_converged,
    check_finite,
    check_generalisation_gap,
    check_history,
    check_learning,
    check_overfitting,
    moving_median,
)
from segqc.checks.loss.history import LossHistory

DEFAULTS = LossCurveSettings()


def history(loss, val_loss=None) -> LossHistory:
    loss = np.asarray(loss, dtype=float)
    return LossHistory(
        source=Path("history.csv"),
        kind="csv",
        epochs=np.arange(1, len(loss) + 1),
        loss=loss,
        val_loss=None if val_loss is None else np.asarray(val_loss, dtype=float),
    )


def outcomes(h: LossHistory, settings: LossCurveSettings = DEFAULTS) -> dict[str, str]:
    return {name: verdict.outcome for name, verdict in check_history(h, settings).items()}


def test_moving_median_is_trailing_and_shrinks_at_the_start():
    # i=0: [1]; i=1: [1,5] -> 3; i=2: [1,5,2] -> 2; i=3: [5,2,8] -> 5; i=4: [2,8,3] -> 3
    assert moving_median(np.array([1, 5, 2, 8, 3]), 3).tolist() == [1, 3, 2, 5, 3]
    assert moving_median(np.array([4.0, 1.0]), 1).tolist() == [4.0, 1.0]
    with pytest.raises(ValueError, match="window"):
        moving_median(np.array([1.0]), 0)


def test_checks_are_named_as_the_qc_tests():
    assert list(LOSS_CHECKS) == [
        "finite", "learning", "converged", "overfitting", "generalisation_gap"
    ]  # fmt: skip


def healthy() -> LossHistory:
    epochs = np.arange(1, 61)
    wiggle = 1 + 0.02 * (-1) ** epochs  # +-2% noise on the validation loss
    return history(0.3 + np.exp(-epochs / 5), (0.4 + np.exp(-epochs / 5)) * wiggle)


def test_healthy_curve_passes_every_check():
    assert outcomes(healthy()) == dict.fromkeys(LOSS_CHECKS, "pass")


def test_smoothing_keeps_one_noisy_last_epoch_from_failing():
    h = healthy()
    h.val_loss[-1] *= 1.3  # one bad epoch: raw rise 30% above the minimum
    assert check_overfitting(h, DEFAULTS).outcome == "pass"
    unsmoothed = LossCurveSettings(smoothing_window=1)
    assert check_overfitting(h, unsmoothed).outcome == "fail"


def test_still_improving_warns_train_longer():
    epochs = np.arange(1, 31)
    h = history(1 / np.sqrt(epochs), 1.1 / np.sqrt(epochs))
    verdict = check_converged(h, DEFAULTS)
    assert verdict.outcome == "warn"  # the default level of 'converged'
    # smoothed end = raw epoch 28, 10 epochs before = raw epoch 18: sqrt(18/28) - 1 = -19.8%
    assert "still improving — train longer" in verdict.message
    assert "fell 20% over the last 10 epochs" in verdict.message
    assert verdict.record["values"]["change"] == pytest.approx(np.sqrt(18 / 28) - 1)
    assert outcomes(h)["learning"] == outcomes(h)["overfitting"] == "pass"


def test_converged_level_fail_fails():
    epochs = np.arange(1, 31)
    settings = LossCurveSettings.model_validate({"converged": {"level": "fail"}})
    assert check_converged(history(1 / np.sqrt(epochs)), settings).outcome == "fail"


def test_plateau_from_the_start_is_not_learning():
    loss = np.full(30, 0.7)
    loss[:5] = 0.72  # mean of the first 5: 0.72, of the last 5: 0.7 -> fell 2.8%
    verdict = check_learning(history(loss, loss + 0.1), DEFAULTS)
    assert verdict.outcome == "fail"
    assert "not learning — training loss fell only 2.8%" in verdict.message
    assert "loss_curve.learning.min_drop" in verdict.message
    assert check_converged(history(loss, loss + 0.1), DEFAULTS).outcome == "pass"


def overfitting_history() -> LossHistory:
    """val_loss 1.0 -> 0.5 (epochs 1-20), flat to epoch 24, then +20% to 0.6 by epoch 34."""
    epochs = np.arange(1, 41)
    val = np.interp(epochs, [1, 20, 24, 34, 40], [1.0, 0.5, 0.5, 0.6, 0.6])
    return history(1.0 - 0.01 * epochs, val)


def test_overfitting_fails_naming_the_epoch_of_the_minimum():
    verdict = check_overfitting(overfitting_history(), DEFAULTS)
    assert verdict.outcome == "fail"
    # smoothed min 0.5, smoothed end 0.6: +20%; raw minimum first reached at epoch 20;
    # smoothed loss at epoch 20 = loss(18) = 0.82, at the end loss(38) = 0.62: -24.4%
    assert verdict.message.startswith(
        "overfitting: val_loss rose 20% above its minimum (epoch 20) while loss fell 24%; "
        "use the epoch-20 weights (weights_best.h5), add training data, or augment"
    )
    assert verdict.record["values"]["best_epoch"] == 20
    assert verdict.record["values"]["rise"] == pytest.approx(0.2)
    assert verdict.record["values"]["loss_fall"] == pytest.approx(0.2 / 0.82)
    # smoothed epoch 30 = raw epoch 28 = 0.54, smoothed end 0.6: rose 11% in the last 10
    converged = check_converged(overfitting_history(), DEFAULTS)
    assert converged.outcome == "warn"
    assert "not converged — smoothed val_loss rose 11%" in converged.message


def test_overfitting_limit_comes_from_thresholds():
    loose = LossCurveSettings.model_validate({"overfitting": {"max_rise": 0.25}})
    assert check_overfitting(overfitting_history(), loose).outcome == "pass"


def test_diverging_training_loss_fails_learning_and_overfitting():
    epochs = np.arange(1, 31)
    loss = 0.5 * 1.05**epochs
    verdicts = check_history(history(loss, loss * 1.2), DEFAULTS)
    assert verdicts["learning"].outcome == "fail"
    # last-5 mean / first-5 mean = 1.05**25 = 3.386 -> rose 239%
    assert "diverging — training loss rose 239%" in verdicts["learning"].message
    assert verdicts["overfitting"].outcome == "fail"
    assert "unstable" in verdicts["overfitting"].message


def test_nan_fails_finite_and_the_other_checks_do_not_guess():
    loss = np.linspace(1.0, 0.3, 20)
    loss[11:] = np.nan  # epochs 12..20
    verdicts = check_history(history(loss, loss + 0.1), DEFAULTS)
    assert verdicts["finite"].outcome == "fail"
    assert "loss is NaN from epoch 12 (9 of 20 epochs not finite)" in verdicts["finite"].message
    assert "val_loss is NaN from epoch 12" in verdicts["finite"].message
    assert {verdicts[name].outcome for name in list(LOSS_CHECKS)[1:]} == {"skip"}


def test_infinite_val_loss_is_named():
    val = np.linspace(1.0, 0.5, 10)
    val[6] = np.inf
    verdict = check_finite(history(np.linspace(1, 0.4, 10), val), DEFAULTS)
    assert verdict.outcome == "fail"
    assert "val_loss is inf from epoch 7 (1 of 10 epochs not finite)" in verdict.message


@pytest.mark.parametrize("n", [1, 2, 3])
def test_short_histories_get_a_verdict(n):
    loss = [1.0, 0.8, 0.6][:n]
    verdicts = check_history(history(loss, [x + 0.1 for x in loss]), DEFAULTS)
    assert verdicts["finite"].outcome == "pass"
    assert verdicts["converged"].outcome == "warn"
    assert f"only {n} epoch" in verdicts["converged"].message
    assert "train longer" in verdicts["converged"].message
    assert verdicts["overfitting"].outcome == "skip"
    assert verdicts["generalisation_gap"].outcome == "pass"
    if n == 1:
        assert verdicts["learning"].outcome == "skip"
        assert "only 1 epoch" in verdicts["learning"].message
    else:  # first vs last epoch: 1.0 -> 0.8 (-20%) or 1.0 -> 0.6 (-40%)
        assert verdicts["learning"].outcome == "pass"
        assert verdicts["learning"].record["values"]["drop"] == pytest.approx(
            0.2 if n == 2 else 0.4
        )


def test_no_validation_column():
    epochs = np.arange(1, 41)
    verdicts = check_history(history(0.3 + np.exp(-epochs / 5)), DEFAULTS)
    assert verdicts["finite"].outcome == "pass"
    assert "no val_loss recorded" in verdicts["finite"].message
    assert verdicts["learning"].outcome == "pass"
    assert verdicts["converged"].outcome == "pass"
    assert verdicts["converged"].record["values"]["watched"] == "loss"
    for name in ("overfitting", "generalisation_gap"):
        assert verdicts[name].outcome == "skip"
        assert "no val_loss recorded in history.csv" in verdicts[name].message


def test_generalisation_gap():
    epochs = np.arange(1, 41)
    loss = 0.2 + np.exp(-epochs / 5)
    verdict = check_generalisation_gap(history(loss, 3 * loss), DEFAULTS)
    assert verdict.outcome == "fail"
    assert "final val_loss is 3.00× the training loss" in verdict.message
    assert "loss_curve.generalisation_gap.max_ratio" in verdict.message
    assert verdict.record["values"]["ratio"] == pytest.approx(3.0)
    assert check_generalisation_gap(history(loss, 1.5 * loss), DEFAULTS).outcome == "pass"


def test_bundled_thresholds_document_the_loss_curve_section():
    from segqc.thresholds import bundled_thresholds_path, load_thresholds

    loaded = load_thresholds(bundled_thresholds_path())
    section = loaded.thresholds.loss_curve
    assert section == LossCurveSettings()  # the file states the defaults, no surprises
    assert section.required is False and section.converged.level == "warn"
    for key in ("required", "smoothing_window", "min_drop", "last_epochs", "tolerance",
                "max_rise", "max_ratio"):  # fmt: skip
        assert f"{key}:" in loaded.text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("loss_curve:\n  overfit: {max_rise: 0.2}\n",
         "loss_curve.overfit: unknown key; did you mean 'overfitting'?"),
        ("loss_curve:\n  overfitting: {max_rise: -0.1}\n",
         "loss_curve.overfitting.max_rise: Input should be greater than or equal to 0"),
        ("loss_curve:\n  converged: {level: maybe}\n",
         "loss_curve.converged.level: Input should be 'fail' or 'warn'"),
        ("loss_curve:\n  smoothing_window: 2.5\n",
         "loss_curve.smoothing_window: Input should be a valid integer"),
        ("loss_curve:\n  required: 'yes'\n",
         "loss_curve.required: Input should be a valid boolean"),
    ],
)  # fmt: skip
def test_bad_loss_curve_settings_name_the_key(thresholds_file, text, message):
    from segqc.thresholds import ThresholdsError, load_thresholds

    path = thresholds_file(text)
    with pytest.raises(ThresholdsError) as info:
        load_thresholds(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)
