"""Quality Control #1 (ZeroCostDL4Mic): inspect the training and validation loss.

One test per check (``test_overfitting`` is ``loss_curve::overfitting``); limits come
from the ``loss_curve:`` section of thresholds.yaml. The history is the model folder's
``Quality Control/training_evaluation.csv``, else its TensorBoard ``logs/``, or the file
given with ``--training-log``. Without one, these tests skip and say where segqc looked.
"""

from typing import Any

from segqc.checks.loss.inspection import LossInspection
from segqc.testing import assert_loss_check


def test_finite(loss_curve: LossInspection, record_property: Any) -> None:
    """No NaN or inf in loss or val_loss (a NaN means training diverged)."""
    assert_loss_check(loss_curve, "finite", record_property)


def test_learning(loss_curve: LossInspection, record_property: Any) -> None:
    """The training loss fell from the first to the last epochs (window means)."""
    assert_loss_check(loss_curve, "learning", record_property)


def test_converged(loss_curve: LossInspection, record_property: Any) -> None:
    """The smoothed val_loss is flat over the last epochs; still falling: train longer."""
    assert_loss_check(loss_curve, "converged", record_property)


def test_overfitting(loss_curve: LossInspection, record_property: Any) -> None:
    """The smoothed val_loss did not rise above its minimum while the loss kept falling."""
    assert_loss_check(loss_curve, "overfitting", record_property)


def test_generalisation_gap(loss_curve: LossInspection, record_property: Any) -> None:
    """The final val_loss is not much larger than the final training loss."""
    assert_loss_check(loss_curve, "generalisation_gap", record_property)
