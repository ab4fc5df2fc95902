"""The leakage check in a QC session: one small plugin object."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from segqc.checks.leakage.search import LeakageReport

if TYPE_CHECKING:
    from segqc.session import QcSession

__all__ = ["LeakagePlugin", "leakage_section"]

#: How the leakage check compares images, for summary.json.
METHOD = (
    "max NCC of the highest-variance probe window over 8 flips/rotations, "
    "both directions, on smoothed block-averaged images"
)


class LeakagePlugin:
    """Runs ``test_leakage`` only with ``--training-data``; adds ``leakage`` to summary.json.

    Parameters
    ----------
    session : QcSession
    inactive : pytest.MarkDecorator
        The marker that deselects the test of a check that was not asked for.
    """

    def __init__(self, session: QcSession, inactive: pytest.MarkDecorator) -> None:
        self.session = session
        self.inactive = inactive

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Deselect ``test_leakage`` when no ``--training-data`` is given."""
        if "qc_leakage" in metafunc.fixturenames and self.session.settings.training_data is None:
            metafunc.parametrize("_qc_leakage_active", [pytest.param(None, marks=self.inactive)])

    def pytest_segqc_summary_section(self, session: QcSession) -> dict[str, Any]:
        """summary.json's ``leakage`` (null without ``--training-data``)."""
        report = session.known_leakage() or session.leakage()
        folder = session.settings.training_data
        return {"leakage": None if report is None else leakage_section(report, str(folder))}


def leakage_section(report: LeakageReport, training_data: str) -> dict[str, Any]:
    """The ``leakage`` record of summary.json."""
    return {
        "training_data": training_data,
        "method": METHOD,
        **report.settings,
        "n_qc": report.n_qc,
        "n_training": report.n_training,
        "seconds": round(report.seconds, 3),
        "passed": not report.leaks and not report.problems,
        "leaks": [
            {"qc": str(x.qc), "training": str(x.training), "score": x.score, "how": x.how}
            for x in report.leaks
        ],
        "closest": {k: {"training": v[0], "score": v[1]} for k, v in report.closest.items()},
        "problems": list(report.problems),
    }
