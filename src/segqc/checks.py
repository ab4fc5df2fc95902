"""Assertion helpers for QC tests: clean failure messages, warnings for ``level: warn``."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Literal, Protocol

import pytest

from segqc.session import ImageOutcome

__all__ = ["Judged", "SegQcWarning", "assert_image", "assert_verdicts"]


class Judged(Protocol):
    """A verdict on one limit: metric limits, regression drops, statistical gates."""

    @property
    def outcome(self) -> Literal["pass", "fail", "warn"]:
        """``pass``, or the level of the broken limit."""
        ...

    def message(self) -> str:
        """One line naming subject, metric, value, limit and thresholds.yaml key."""
        ...


class SegQcWarning(UserWarning):
    """A limit with ``level: warn`` was broken: shown, recorded, never a failure."""


def assert_verdicts(verdicts: Iterable[Judged]) -> None:
    """Fail the current test if any ``fail``-level limit is broken.

    Broken ``warn``-level limits become :class:`SegQcWarning` warnings. The failure
    message has one line per broken limit (see :meth:`Verdict.message`) and no Python
    traceback, because the problem is the model, not the test code.
    """
    __tracebackhide__ = True
    failures = []
    for verdict in verdicts:
        if verdict.outcome == "warn":
            warnings.warn(SegQcWarning(verdict.message()), stacklevel=2)
        elif verdict.outcome == "fail":
            failures.append(verdict.message())
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)


def assert_image(outcome: ImageOutcome) -> None:
    """Fail if the image could not be evaluated or broke a ``per_image`` limit."""
    __tracebackhide__ = True
    if outcome.error:
        pytest.fail(outcome.error, pytrace=False)
    assert_verdicts(outcome.verdicts)
