"""The device-agreement check in a QC session: one small plugin object."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from segqc.checks.agreement.devices import agreement_section, judge_agreement
from segqc.checks.verdict import Verdict
from segqc.data.pairing import QcPair
from segqc.thresholds import DeviceAgreementSettings

if TYPE_CHECKING:
    from segqc.session import QcSession

__all__ = ["AgreementPlugin", "agreement_settings", "image_agreement"]


def agreement_settings(session: QcSession) -> DeviceAgreementSettings:
    """``device_agreement:`` of thresholds.yaml, or its defaults."""
    return session.limits.device_agreement or DeviceAgreementSettings()


def image_agreement(session: QcSession, pair: QcPair) -> list[Verdict]:
    """The device-agreement verdicts of one image (its outcome evaluated if need be).

    Skips the test of an image that could not be evaluated: its ``test_image`` fails
    and says why.
    """
    outcome = session.outcome(pair)
    if outcome.scores is None:
        pytest.skip(f"segqc: {pair.name} could not be evaluated; its test_image says why")
    if outcome.comparison is None:
        pytest.fail(f"{pair.name}: no second prediction was made", pytrace=False)
    return judge_agreement(
        pair.name, outcome.comparison, outcome.scores, agreement_settings(session)
    )


class AgreementPlugin:
    """One ``test_device_agreement`` per image with ``--compare-device``; adds
    ``device_agreement`` to summary.json.

    Parameters
    ----------
    session : QcSession
    inactive : pytest.MarkDecorator
        The marker that deselects the tests of a check that was not asked for.
    """

    def __init__(self, session: QcSession, inactive: pytest.MarkDecorator) -> None:
        self.session = session
        self.inactive = inactive

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """One test per image, with the image's name as the id."""
        if "qc_compared_pair" not in metafunc.fixturenames:
            return
        session = self.session
        if session.settings.compare_device is None:
            params = [pytest.param(None, marks=self.inactive, id="inactive")]
        else:
            params = [pytest.param(pair, id=pair.name) for pair in session.pairs]
        metafunc.parametrize("qc_compared_pair", params, indirect=True)

    def pytest_segqc_summary_section(self, session: QcSession) -> dict[str, Any]:
        """summary.json's ``device_agreement`` (null without ``--compare-device``)."""
        compare_device = session.settings.compare_device
        if compare_device is None:
            return {"device_agreement": None}
        section = agreement_section(
            session.outcomes,
            agreement_settings(session),
            device=session.device or session.predictor.describe().get("device"),
            compare_device=compare_device,
        )
        return {"device_agreement": section}
