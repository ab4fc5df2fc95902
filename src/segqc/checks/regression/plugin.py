"""The regression checks in a QC session: one small plugin object.

It compares the session's outcomes with the baseline (:class:`BaselineSetup`, read or
built at configure time), writes the baseline file of ``--update-baseline`` when the
session ends, adds ``regression`` to summary.json and prints the side-by-side table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from segqc.checks.regression.baseline import baseline_document, content_hashes, write_baseline
from segqc.checks.regression.comparison import Comparison, compare
from segqc.checks.regression.setup import BaselineSetup
from segqc.data.writing import OutputError
from segqc.metrics.scores import QcScores
from segqc.predict.model_folder import sha256_of

if TYPE_CHECKING:
    from segqc.session import QcSession

__all__ = ["RegressionPlugin"]


class RegressionPlugin:
    """Compare with the baseline; write one with ``--update-baseline``.

    Parameters
    ----------
    session : QcSession
        Its ``baseline`` says what to compare with.
    """

    def __init__(self, session: QcSession) -> None:
        self.session = session
        self.messages: list[tuple[str, str]] = []  # (level, text) for the terminal

    @property
    def setup(self) -> BaselineSetup | None:
        """What the session compares with."""
        return self.session.baseline

    def old_scores(self) -> dict[str, QcScores]:
        """The baseline's scores by image (only those evaluated so far, for a model)."""
        setup = self.setup
        if setup is None:
            return {}
        if setup.file is not None:
            return setup.file.scores()
        return {o.pair.name: o.scores for o in self.session.baseline_outcomes if o.scores}

    def compare(self) -> Comparison:
        """Compare the session's evaluated images with the baseline."""
        setup = self.setup
        assert setup is not None and setup.compares
        session = self.session
        new = {o.pair.name: o.scores for o in session.outcomes if o.scores}
        excluded = {k: list(v) for k, v in setup.excluded.items()}
        failed = [o.pair.name for o in session.outcomes if o.scores is None]
        failed += [o.pair.name for o in session.baseline_outcomes if o.scores is None]
        if failed:
            excluded["could not be evaluated"] = sorted(set(failed))
        changed = set(excluded.get("content changed since the baseline", []))
        limits = session.limits
        return compare(
            {k: v for k, v in self.old_scores().items() if k not in changed},
            new,
            settings=limits.regression,
            bootstrap=limits.statistics.bootstrap,
            baseline=setup.describe,
            not_compared=excluded,
        )

    def pytest_segqc_session_finish(self, session: QcSession) -> list[str]:
        """Write the baseline of ``--update-baseline`` if every image was evaluated.

        Returns
        -------
        list of str
            Problems that fail the session (the baseline could not be written).
        """
        setup = self.setup
        if setup is None or setup.update_path is None:
            return []
        missing = [o.pair.name for o in session.outcomes if o.scores is None]
        missing += [p.name for p in session.pending()]
        if missing:
            problem = (
                f"baseline not written: {len(missing)} QC images could not be evaluated "
                f"({', '.join(missing)}); {setup.update_path} left as it was"
            )
            self.messages.append(("error", problem))
            return [problem]
        model = session.predictor.describe()
        if session.model_folder is not None:
            model["weights_sha256"] = sha256_of(session.model_folder.weights)
        loaded = session.loaded
        document = baseline_document(
            scores={o.pair.name: o.scores for o in session.outcomes if o.scores},
            hashes=content_hashes(session.pairs),
            model=model,
            iou_threshold=session.iou_threshold,
            thresholds={
                "path": str(loaded.path),
                "content": loaded.thresholds.model_dump(exclude_none=True),
            },
        )
        try:
            write_baseline(setup.update_path, document)
        except OutputError as exc:
            self.messages.append(("error", str(exc)))
            return [str(exc)]
        self.messages.append(("wrote", f"wrote baseline {setup.update_path}"))
        return []

    def pytest_segqc_summary_section(self, session: QcSession) -> dict[str, Any]:
        """summary.json's ``regression`` (null when there is nothing to compare)."""
        setup = self.setup
        if setup is None or not session.outcomes:
            return {"regression": None}
        if setup.update_path is not None:
            updated = any(level == "wrote" for level, _ in self.messages)
            return {"regression": {"baseline": f"file {setup.update_path}", "updated": updated}}
        if not self.old_scores():
            return {"regression": None}
        return {"regression": self.compare().table()}

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """Say what was compared, the side-by-side pooled table, and the baseline written."""
        from segqc.checks.regression.terminal import terminal_lines

        session = self.session
        setup = self.setup
        if setup is None or not session.writes_outputs or not session.outcomes:
            return
        lines = [line for line in self.messages if line[0] != "error"]
        if setup.compares and self.old_scores():
            lines += terminal_lines(self.compare())
        if not lines:
            return
        terminalreporter.section("segqc regression")
        for level, text in lines:
            terminalreporter.write_line(
                text if level in ("wrote", "info") else f"{level.upper()} {text}",
                red=level in ("error", "fail"),
                yellow=level == "warn",
                green=level == "improved",
            )
