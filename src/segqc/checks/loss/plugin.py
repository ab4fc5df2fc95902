"""The loss-curve checks in a QC session: one small plugin object."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from segqc.checks.loss.inspection import LossInspection

if TYPE_CHECKING:
    from segqc.session import QcSession

__all__ = ["LossPlugin"]


class LossPlugin:
    """Reads the training history once (on first use) and adds ``loss_curve`` to summary.json.

    Parameters
    ----------
    session : QcSession
        For the ``loss_curve:`` settings, the model folder and ``--training-log``.
    """

    def __init__(self, session: QcSession) -> None:
        settings = session.settings
        self.inspection = LossInspection(
            session.limits.loss_curve,
            output_dir=settings.output,
            model_dir=session.model_folder.path if session.model_folder else settings.model,
            training_log=settings.training_log,
        )

    def pytest_segqc_session_finish(self, session: QcSession) -> None:
        """Draw loss_curve.png with the other outputs."""
        self.inspection.draw_figure()

    def pytest_segqc_summary_section(self, session: QcSession) -> dict[str, Any]:
        """summary.json's ``loss_curve``: the history checked, every verdict, the figure."""
        return {"loss_curve": self.inspection.summary()}
