"""The robustness check in a QC session: one small plugin object."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from segqc.checks.robustness.perturbations import plan_perturbations, robustness_summary

if TYPE_CHECKING:
    from segqc.session import QcSession

__all__ = ["RobustnessPlugin"]

PREDICTIONS_MODE_SKIP = (
    "segqc: robustness needs a model to predict perturbed images; skipped with --predictions"
)


class RobustnessPlugin:
    """One ``test_robustness`` per perturbation and image; adds ``robustness`` to summary.json.

    Parameters
    ----------
    session : QcSession
    inactive : pytest.MarkDecorator
        The marker that deselects the tests of a check that was not asked for.
    """

    def __init__(self, session: QcSession, inactive: pytest.MarkDecorator) -> None:
        self.session = session
        self.inactive = inactive
        settings = session.robustness
        self.plan = plan_perturbations(settings) if settings is not None else []

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """One test per perturbation x image, ids ``<perturbation>[<image>]``."""
        if "qc_perturbation" not in metafunc.fixturenames:
            return
        session = self.session
        if session.robustness is None:
            params = [pytest.param(None, marks=self.inactive, id="inactive")]
        elif not session.predictor.needs_source_image:
            params = [
                pytest.param(None, marks=pytest.mark.skip(PREDICTIONS_MODE_SKIP), id="skipped")
            ]
        else:
            params = [
                pytest.param((p, pair), id=f"{p.id}[{pair.name}]")
                for p in self.plan
                for pair in session.pairs
            ]
        metafunc.parametrize("qc_perturbation", params, indirect=True)

    def pytest_segqc_summary_section(self, session: QcSession) -> dict[str, Any]:
        """summary.json's ``robustness`` (null when the check did not run)."""
        if session.robustness is None or not session.predictor.needs_source_image:
            return {"robustness": None}
        order = [p.name for p in session.pairs]
        results = session.robustness_results
        return {"robustness": robustness_summary(session.robustness, results, order)}
