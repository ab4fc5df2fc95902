"""Assertion helpers for QC tests: one line per broken limit, warnings for ``level: warn``.

Every check hands over :class:`~segqc.checks.verdict.Verdict` objects, and every QC test
asserts on them with :func:`assert_verdicts`. Use it in your own QC tests too::

    from segqc.testing import assert_verdicts

    def test_my_limit(qc_dataset):
        assert_verdicts(qc_dataset.pooled_verdicts)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from segqc.checks.loss.inspection import LossInspection
from segqc.checks.quality import judge_image
from segqc.checks.verdict import Verdict
from segqc.pipeline.evaluate import is_warning_note
from segqc.pipeline.outcome import ImageOutcome
from segqc.thresholds import Thresholds

__all__ = ["SegQcWarning", "assert_image", "assert_loss_check", "assert_verdicts"]


class SegQcWarning(UserWarning):
    """A limit with ``level: warn`` was broken: shown, recorded, never a failure."""


def assert_verdicts(verdicts: Iterable[Verdict]) -> None:
    """Fail the current test if any ``fail``-level limit is broken.

    Broken ``warn``-level limits become :class:`SegQcWarning` warnings. The failure
    message has one line per broken limit (:attr:`Verdict.message`) and no Python
    traceback, because the problem is the model, not the test code.
    """
    __tracebackhide__ = True
    failures = []
    for verdict in verdicts:
        if verdict.outcome == "warn":
            warnings.warn(SegQcWarning(verdict.message), stacklevel=2)
        elif verdict.outcome == "fail":
            failures.append(verdict.message)
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)


def assert_image(outcome: ImageOutcome, thresholds: Thresholds) -> None:
    """Fail if the image could not be evaluated or broke a ``per_image`` limit.

    Notes that are warnings (labels in several pieces, see
    :func:`segqc.pipeline.evaluate.split_labels_note`) become :class:`SegQcWarning`
    warnings of the test, so pytest's warnings summary shows them too.
    """
    __tracebackhide__ = True
    if outcome.error:
        pytest.fail(outcome.error, pytrace=False)
    for note in outcome.notes:
        if is_warning_note(note):
            warnings.warn(SegQcWarning(note), stacklevel=2)
    assert_verdicts(judge_image(outcome, thresholds))


def assert_loss_check(
    inspection: LossInspection, check: str, record_property: Callable[[str, Any], None]
) -> None:
    """Pass, fail, warn or skip the current test with the verdict of loss check ``check``.

    Without a history the test skips with where segqc looked (fails instead when
    ``loss_curve.required`` is true); an unreadable history fails with the file at fault.
    """
    __tracebackhide__ = True
    search = inspection.search
    if search.history is None:
        record_property("outcome", "error" if search.error else "missing")
        if search.error or inspection.settings.required:
            suffix = "" if search.error else " (thresholds.yaml loss_curve.required: true)"
            pytest.fail(inspection.missing_reason() + suffix, pytrace=False)
        pytest.skip(inspection.missing_reason())
    verdict = inspection.verdicts[check]
    record_property("history", str(search.history.source))
    record_property("outcome", verdict.outcome)
    for key, value in verdict.record.get("values", {}).items():
        record_property(key, value)
    if verdict.outcome == "skip":
        pytest.skip(verdict.message)
    assert_verdicts([verdict])
