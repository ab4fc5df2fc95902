"""What a session compares with: a baseline file, a baseline model, or a file to write.

:func:`setup_baseline` checks the regression options at configure time (exit code 4 with
one line per problem); the comparison itself happens once the images are evaluated
(:mod:`segqc.checks.regression.comparison`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segqc.checks.regression.baseline import (
    Baseline,
    BaselineError,
    compare_data,
    content_hashes,
    read_baseline,
)
from segqc.data.pairing import QcPair
from segqc.predict import Predictor
from segqc.predict.model_folder import ModelFolder
from segqc.settings import Settings
from segqc.thresholds import LoadedThresholds

__all__ = ["BaselineSetup", "BaselineSetupError", "setup_baseline"]


class BaselineSetupError(ValueError):
    """The regression options cannot be used; the message says what to do."""


@dataclass(frozen=True)
class BaselineSetup:
    """What this session compares with. Exactly one of ``file``, ``predictor`` (a second
    model) or ``update_path`` (write a baseline) is set.

    Attributes
    ----------
    file : Baseline or None
        The baseline file read at configure time (``--baseline``).
    path : Path or None
        Where it was read from.
    excluded : dict of str to list of str
        Images left out of the comparison, by reason (``--baseline-allow-different-data``).
    predictor : Predictor or None
        The baseline model's predictor (``--baseline-model``).
    model_folder : ModelFolder or None
        The baseline model's folder.
    update_path : Path or None
        The baseline file to write (``--update-baseline``).
    """

    file: Baseline | None = None
    path: Path | None = None
    excluded: dict[str, list[str]] = field(default_factory=dict)
    predictor: Predictor | None = None
    model_folder: ModelFolder | None = None
    model_dir: Path | None = None
    update_path: Path | None = None

    @property
    def compares(self) -> bool:
        """Whether there is something to compare with (a file or a model)."""
        return self.file is not None or self.predictor is not None

    @property
    def describe(self) -> str:
        """What the baseline is, for messages and summary.json."""
        if self.predictor is not None:
            return f"model {self.model_dir} (run in this session)"
        return f"file {self.path}"


def setup_baseline(
    settings: Settings,
    loaded: LoadedThresholds,
    pairs: tuple[QcPair, ...],
    *,
    predictor: Predictor | None = None,
    model_folder: ModelFolder | None = None,
) -> BaselineSetup | None:
    """Check the regression options and read the baseline file.

    Parameters
    ----------
    settings : Settings
        ``--baseline``, ``--update-baseline``, ``--baseline-model``,
        ``--baseline-allow-different-data``.
    loaded : LoadedThresholds
        For the matching threshold the baseline must share.
    pairs : tuple of QcPair
        This session's QC images, to compare with the baseline's.
    predictor, model_folder : optional
        The baseline model's predictor and folder, built by the session.

    Returns
    -------
    BaselineSetup or None
        None when no regression option is given.

    Raises
    ------
    BaselineSetupError
    """
    if settings.update_baseline:
        assert settings.baseline is not None
        _check_replaceable(settings.baseline)
        return BaselineSetup(update_path=settings.baseline)
    if settings.baseline is not None:
        baseline, excluded = _read_checked(
            settings.baseline, loaded, pairs, allow=settings.baseline_allow_different_data
        )
        return BaselineSetup(file=baseline, path=settings.baseline, excluded=excluded)
    if predictor is not None:
        return BaselineSetup(
            predictor=predictor, model_folder=model_folder, model_dir=settings.baseline_model
        )
    return None


def _check_replaceable(path: Path) -> None:
    """--update-baseline replaces only a file that is itself a segqc baseline."""
    if path.is_dir():
        raise BaselineSetupError(f"{path}: is a folder; --baseline needs a file path")
    if path.exists():
        try:
            read_baseline(path)
        except BaselineError as exc:
            raise BaselineSetupError(
                f"{exc} — refusing to overwrite it with --update-baseline; delete it or "
                "choose another --baseline path"
            ) from None


def _read_checked(
    path: Path, loaded: LoadedThresholds, pairs: tuple[QcPair, ...], *, allow: bool
) -> tuple[Baseline, dict[str, list[str]]]:
    """Read the baseline; refuse other QC data unless ``allow`` (then list what differs)."""
    try:
        baseline = read_baseline(path)
    except BaselineError as exc:
        raise BaselineSetupError(str(exc)) from None
    iou_threshold = loaded.thresholds.matching.iou_threshold
    if baseline.matching.iou_threshold != iou_threshold:
        raise BaselineSetupError(
            f"{path}: measured at matching.iou_threshold {baseline.matching.iou_threshold}, "
            f"but {loaded.path.name} sets {iou_threshold}; compare at the same "
            "threshold or write a new baseline"
        )
    mismatch = compare_data(baseline, content_hashes(pairs))
    if mismatch.differs and not allow:
        lines = "\n".join(f"  - {line}" for line in mismatch.lines())
        raise BaselineSetupError(
            f"{path}: the baseline was made on different QC images:\n{lines}\n"
            "  compare the common images only with --baseline-allow-different-data, "
            "or write a new baseline with --update-baseline"
        )
    found: dict[str, Any] = {
        "only in the baseline": mismatch.only_in_baseline,
        "not in the baseline": mismatch.only_in_run,
        "content changed since the baseline": mismatch.changed,
    }
    return baseline, {reason: names for reason, names in found.items() if names}
