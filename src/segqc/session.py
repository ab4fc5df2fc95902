"""One QC session: every setting resolved once, and everything the session finds.

:func:`open_session` builds the :class:`QcSession` at configure time, before anything is
collected: thresholds, QC pairs (with their groups), the predictor (and the baseline
model's, both through the ``pytest_segqc_make_predictor`` hook), the prediction cache,
the baseline, the checks asked for and the locked output folder. Nothing is resolved
later, and nothing copies from the session before it is complete.

The session then evaluates images on demand (:meth:`QcSession.outcome`), at most once
each, and keeps what it finds: image outcomes, the baseline model's outcomes,
robustness results and the leakage report. Where they are kept depends on the process:

* a single process (no pytest-xdist) or the xdist controller *stores* each finding:
  the prediction goes into ``<qc-output>/predictions/``, the report panels into the
  panel store, the outcome into the session;
* an xdist worker keeps the outcome for its own tests and queues the finding
  (:meth:`QcSession.take_unsent`); :mod:`segqc.xdist` sends it to the controller, which
  stores it (:meth:`QcSession.accept`). Workers never write into the output folder.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from segqc.checks.accuracy import AccuracyCurve, accuracy_curve, curve_thresholds
from segqc.checks.leakage.search import LeakageReport, find_leaks, list_training_images
from segqc.checks.quality import DatasetOutcome, judge_dataset, judge_image
from segqc.checks.regression.setup import BaselineSetup, BaselineSetupError, setup_baseline
from segqc.checks.robustness.perturbations import (
    Perturbation,
    RobustnessResult,
    perturb_and_measure,
)
from segqc.checks.subgroups.grouping import GroupsFileError, read_groups_file
from segqc.data.pairing import PairingError, QcPair, discover_pairs, find_prediction_files
from segqc.data.writing import OutputError, encode_label_image
from segqc.outputs.folder import OutputFolder
from segqc.pipeline.evaluate import EvaluationSettings, MeasuredImage, evaluate_image
from segqc.pipeline.outcome import ImageOutcome
from segqc.predict import Predictor
from segqc.predict.folder import PredictionsFolder
from segqc.predict.model_folder import ModelFolder, ModelFolderError, inspect_model_folder
from segqc.predict.stardist import DeviceError
from segqc.report.selection import PanelPlan
from segqc.report.store import PanelStore
from segqc.settings import Settings
from segqc.thresholds import (
    LoadedThresholds,
    RobustnessSettings,
    ThresholdsError,
    bundled_thresholds_path,
    load_thresholds,
)

if TYPE_CHECKING:
    import pytest

__all__ = ["ImageFinding", "QcSession", "Role", "SessionError", "open_session"]

#: ``single``: no pytest-xdist; ``controller``/``worker``: its two sides.
Role = Literal["single", "controller", "worker"]

#: Where the baseline model's predictions go in the output folder.
BASELINE_PREDICTIONS = "baseline-model/predictions"


class SessionError(ValueError):
    """The session cannot start; the message (one or more lines) says why and what to do."""


@dataclass(frozen=True)
class ImageFinding:
    """One image evaluated somewhere, with what only the writing process keeps.

    Attributes
    ----------
    kind : {"image", "baseline"}
        The model under test, or the baseline model (``--baseline-model``).
    outcome : ImageOutcome
        What was measured.
    prediction : bytes or None
        The predicted labels as TIFF bytes, when they were predicted in this session.
    panels : dict or None
        The report panels (:func:`segqc.report.panels.visual_document`), when drawn.
    reason : str
        Why the panels are shown ("" when every image is shown).
    for_test : bool
        Evaluated by the image's own per-image test (rather than on the way to a
        whole-set test): this one's outcome is the one kept.
    """

    kind: Literal["image", "baseline"]
    outcome: ImageOutcome
    prediction: bytes | None = None
    panels: Mapping[str, Any] | None = None
    reason: str = ""
    for_test: bool = False


class QcSession:
    """One QC session (see the module docstring). Build it with :func:`open_session`.

    Attributes
    ----------
    settings : Settings
        Every option, resolved.
    loaded : LoadedThresholds
        The thresholds file in force, validated.
    pairs : tuple of QcPair
        The QC images, sorted by name, with their groups.
    ignored : tuple of Path
        Files in the QC folders that are not TIFFs.
    predictor : Predictor
        Where the predicted labels come from.
    model_folder : ModelFolder or None
        The StarDist model under test (None in ``--predictions`` mode, or when a plugin
        supplied the predictor).
    baseline : BaselineSetup or None
        What the regression checks compare with.
    robustness : RobustnessSettings or None
        The perturbations asked for (``--robustness`` or ``robustness:``).
    second_predictor : Predictor or None
        Predicts each image again on another device (``--compare-device``).
    role : {"single", "controller", "worker"}
        This process's part in a pytest-xdist run.
    output : OutputFolder or None
        The locked output folder (None on an xdist worker, which writes no output).
    panels : PanelStore or None
        Report panels kept for the report (None when no report is written here).
    panel_plan : PanelPlan or None
        Which images get panels (None: none are drawn here).
    """

    def __init__(
        self,
        *,
        settings: Settings,
        loaded: LoadedThresholds,
        pairs: tuple[QcPair, ...],
        ignored: tuple[Path, ...],
        predictor: Predictor,
        model_folder: ModelFolder | None,
        baseline: BaselineSetup | None,
        robustness: RobustnessSettings | None,
        role: Role,
        output: OutputFolder | None,
        second_predictor: Predictor | None = None,
    ) -> None:
        self.settings = settings
        self.loaded = loaded
        self.pairs = pairs
        self.ignored = ignored
        self.predictor = predictor
        self.model_folder = model_folder
        self.baseline = baseline
        self.robustness = robustness
        self.second_predictor = second_predictor
        self.role = role
        self.output = output
        self.panels: PanelStore | None = None
        self.panel_plan: PanelPlan | None = None
        self.summary: dict[str, Any] | None = None
        self.evaluation = EvaluationSettings(
            iou_threshold=self.limits.matching.iou_threshold,
            curve_thresholds=curve_thresholds(self.limits.aggregate_at),
            size_bin_edges=(
                tuple(self.limits.subgroups.object_size.edges)
                if self.limits.subgroups.object_size is not None
                else None
            ),
            model=model_folder,
        )
        self._by_name = {pair.name: pair for pair in pairs}
        self._lock = threading.RLock()
        self._outcomes: dict[str, ImageOutcome] = {}
        self._for_test: set[str] = set()
        self._baseline_outcomes: dict[str, ImageOutcome] = {}
        self._robustness: dict[tuple[str, str], RobustnessResult] = {}
        self._leakage: LeakageReport | None = None
        self._unsent: list[ImageFinding | RobustnessResult | LeakageReport] = []
        self._device: str | None = None
        self.store_problems: list[str] = []

    # --- settings ------------------------------------------------------------------------

    @property
    def limits(self) -> Any:
        """The validated thresholds.yaml (:class:`segqc.thresholds.Thresholds`)."""
        return self.loaded.thresholds

    @property
    def iou_threshold(self) -> float:
        """The matching IoU threshold in force."""
        return float(self.limits.matching.iou_threshold)

    @property
    def writes_outputs(self) -> bool:
        """Whether this process writes metrics.csv, summary.json and the report."""
        return self.output is not None

    def enable_panels(self) -> None:
        """Draw report panels in this session (the report is written by this process, or
        by the controller of this worker)."""
        self.panel_plan = PanelPlan.for_images(
            [p.name for p in self.pairs], self.settings.report_images
        )
        if self.output is not None:
            self.panels = PanelStore(self.output.temporary_folder("panels"))

    # --- image outcomes ------------------------------------------------------------------

    @property
    def outcomes(self) -> list[ImageOutcome]:
        """Outcomes known so far, in QC order."""
        with self._lock:
            return [self._outcomes[p.name] for p in self.pairs if p.name in self._outcomes]

    def known(self, name: str) -> ImageOutcome | None:
        """The outcome of image ``name`` if it is known here (evaluated or received)."""
        with self._lock:
            return self._outcomes.get(name)

    @property
    def complete(self) -> bool:
        """Whether every QC image has an outcome."""
        with self._lock:
            return len(self._outcomes) == len(self.pairs)

    def pending(self) -> list[QcPair]:
        """QC images without an outcome yet."""
        with self._lock:
            return [p for p in self.pairs if p.name not in self._outcomes]

    def outcome(self, pair: QcPair, *, for_test: bool = False) -> ImageOutcome:
        """The outcome of ``pair``: known here, or evaluated now.

        Parameters
        ----------
        pair : QcPair
        for_test : bool
            Asked by the image's own per-image test (see :attr:`ImageFinding.for_test`).
        """
        known = self.known(pair.name)
        if known is not None:
            return known
        return self._keep(self._evaluate(pair, "image", for_test=for_test))

    def evaluate_all(
        self, on_image: Callable[[ImageOutcome, int, int], None] | None = None
    ) -> list[ImageOutcome]:
        """Evaluate every pending image, calling ``on_image(outcome, done, total)`` after each."""
        for pair in self.pending():
            outcome = self.outcome(pair)
            if on_image is not None:
                with self._lock:
                    done = len(self._outcomes)
                on_image(outcome, done, len(self.pairs))
        return self.outcomes

    def dataset(self) -> DatasetOutcome:
        """The evaluated images pooled and averaged, judged against their limits."""
        return judge_dataset(self.outcomes, self.limits)

    def accuracy(self) -> AccuracyCurve | None:
        """The pooled QC set at every IoU threshold of the accuracy curve, judged."""
        return accuracy_curve(self.outcomes, self.limits.aggregate_at)

    # --- the baseline model --------------------------------------------------------------

    def baseline_outcome(self, pair: QcPair) -> ImageOutcome:
        """The baseline model's outcome of ``pair`` (``--baseline-model``)."""
        with self._lock:
            known = self._baseline_outcomes.get(pair.name)
        if known is not None:
            return known
        return self._keep(self._evaluate(pair, "baseline"))

    @property
    def baseline_outcomes(self) -> list[ImageOutcome]:
        """The baseline model's outcomes known so far, in QC order."""
        with self._lock:
            found = self._baseline_outcomes
            return [found[p.name] for p in self.pairs if p.name in found]

    # --- robustness and leakage ----------------------------------------------------------

    def robustness_result(self, perturbation: Perturbation, pair: QcPair) -> RobustnessResult:
        """Predict a perturbed copy of ``pair`` and compare (once per pair and perturbation)."""
        assert self.robustness is not None
        key = (perturbation.id, pair.name)
        with self._lock:
            known = self._robustness.get(key)
        if known is not None:
            return known
        original = self.outcome(pair)
        result = perturb_and_measure(
            perturbation,
            pair,
            predictor=self.predictor,
            original=original.scores,
            iou_threshold=self.iou_threshold,
            seed=self.robustness.seed,
        )
        with self._lock:
            self._robustness.setdefault(key, result)
            if self.role == "worker":
                self._unsent.append(result)
        return result

    @property
    def robustness_results(self) -> list[RobustnessResult]:
        """Every robustness result known so far."""
        with self._lock:
            return list(self._robustness.values())

    def accept_robustness(self, result: RobustnessResult) -> None:
        """Keep a robustness result computed by an xdist worker (the first one wins)."""
        with self._lock:
            self._robustness.setdefault((result.perturbation, result.image), result)

    def leakage(self) -> LeakageReport | None:
        """Compare every QC image with every training image (once; None without
        ``--training-data``)."""
        folder = self.settings.training_data
        if folder is None:
            return None
        with self._lock:
            if self._leakage is not None:
                return self._leakage
        settings = self.limits.leakage
        report = find_leaks(
            [p.source for p in self.pairs if p.source is not None],
            list_training_images(folder),
            ncc_threshold=settings.ncc_threshold,
            downsample=settings.downsample,
            probe_size=settings.probe_size,
        )
        with self._lock:
            if self._leakage is None:
                self._leakage = report
                if self.role == "worker":
                    self._unsent.append(report)
            return self._leakage

    def known_leakage(self) -> LeakageReport | None:
        """The leakage report if it was computed (here or on a worker)."""
        with self._lock:
            return self._leakage

    def accept_leakage(self, report: LeakageReport) -> None:
        """Keep the leakage report an xdist worker computed."""
        with self._lock:
            if self._leakage is None:
                self._leakage = report

    # --- the device ----------------------------------------------------------------------

    @property
    def device(self) -> str | None:
        """The device that predicted (reported by the workers under xdist)."""
        return getattr(self.predictor, "device_name", None) or self._device

    def note_device(self, name: str) -> None:
        """Record the device an xdist worker predicted on."""
        if self._device is None:
            self._device = name

    # --- findings: evaluated here, kept, sent, accepted ----------------------------------

    def _evaluate(
        self, pair: QcPair, kind: Literal["image", "baseline"], *, for_test: bool = False
    ) -> ImageFinding:
        captured: dict[str, Any] = {}

        def keep_arrays(measured: MeasuredImage) -> None:
            if measured.predicted_here:
                captured["prediction"] = encode_label_image(measured.predicted)
            if kind == "image" and self.panel_plan is not None:
                self._draw(measured, captured)

        predictor, settings = self.predictor, self.evaluation
        if kind == "baseline":
            baseline = self.baseline
            assert baseline is not None and baseline.predictor is not None
            predictor = baseline.predictor
            settings = dataclasses.replace(settings, model=baseline.model_folder)
        outcome = evaluate_image(
            pair,
            predictor=predictor,
            settings=settings,
            on_measured=keep_arrays,
            second_predictor=self.second_predictor if kind == "image" else None,
        )
        return ImageFinding(
            kind,
            outcome,
            prediction=captured.get("prediction"),
            panels=captured.get("panels"),
            reason=captured.get("reason", ""),
            for_test=for_test,
        )

    def _draw(self, measured: MeasuredImage, captured: dict[str, Any]) -> None:
        """Draw the image's report panels now if the plan shows it (see :class:`PanelPlan`)."""
        assert self.panel_plan is not None
        outcome = ImageOutcome(measured.pair, scores=measured.scores)
        verdicts = judge_image(outcome, self.limits)
        status = "pass"
        for level in ("warn", "fail"):
            if any(v.outcome == level for v in verdicts):
                status = level
        reason = self.panel_plan.reason(measured.pair.name, status)
        if reason is None:
            return
        from segqc.data.axes import read_source_image
        from segqc.report.panels import draw_visual, visual_document

        source = measured.source
        if source is None and measured.pair.source is not None:  # --predictions with a source
            source = read_source_image(measured.pair.source, spatial_shape=measured.target.shape)
        visual = draw_visual(
            measured.target,
            measured.predicted,
            source,
            measured.matches,
            iou_threshold=measured.iou_threshold,
        )
        captured["panels"] = visual_document(visual)
        captured["reason"] = reason

    def _keep(self, finding: ImageFinding) -> ImageOutcome:
        """Store a finding made here, or, on a worker, keep it for this worker's tests
        and queue it for the controller."""
        if self.role != "worker":
            return self.accept(finding)
        name = finding.outcome.pair.name
        with self._lock:
            found = self._outcomes if finding.kind == "image" else self._baseline_outcomes
            found.setdefault(name, finding.outcome)
            self._unsent.append(finding)
            return found[name]

    def accept(self, finding: ImageFinding) -> ImageOutcome:
        """Store a finding: write its prediction, keep its panels and its outcome.

        The first outcome of an image is kept, unless a later one was evaluated by the
        image's own per-image test and the first was not: the test's outcome and the
        outputs must agree.

        Returns
        -------
        ImageOutcome
            The outcome now kept for the image.
        """
        outcome, name = finding.outcome, finding.outcome.pair.name
        with self._lock:
            found = self._outcomes if finding.kind == "image" else self._baseline_outcomes
            existing = found.get(name)
            replaces = finding.for_test and name not in self._for_test
            if existing is not None and not replaces:
                return existing
        if finding.prediction is not None and self.output is not None:
            folder = "predictions" if finding.kind == "image" else BASELINE_PREDICTIONS
            try:
                path = self.output.write_prediction(folder, outcome.pair.stem, finding.prediction)
            except OutputError as exc:
                outcome = dataclasses.replace(outcome, scores=None, error=str(exc))
            else:
                outcome = dataclasses.replace(outcome, prediction_file=path)
        if finding.panels is not None and self.panels is not None and outcome.scores is not None:
            try:
                self.panels.put(name, finding.panels, finding.reason)
            except (OSError, ValueError) as exc:
                self.store_problems.append(f"{name}: report panels not kept ({exc})")
        with self._lock:
            found[name] = outcome
            if finding.for_test and finding.kind == "image":
                self._for_test.add(name)
        return outcome

    def receive(self, outcome: ImageOutcome) -> None:
        """xdist worker: keep an outcome another worker evaluated (relayed by the controller)."""
        with self._lock:
            self._outcomes.setdefault(outcome.pair.name, outcome)

    def take_unsent(self) -> list[ImageFinding | RobustnessResult | LeakageReport]:
        """xdist worker: what was found here and not yet handed to the controller."""
        with self._lock:
            unsent, self._unsent = self._unsent, []
        return unsent

    def pair_named(self, name: str) -> QcPair | None:
        """The QC pair called ``name``."""
        return self._by_name.get(name)

    def close(self) -> None:
        """Release the output folder (its lock and this session's temporary folders)."""
        if self.output is not None:
            self.output.close()


# --- building a session ------------------------------------------------------------------


def open_session(config: pytest.Config, settings: Settings, *, role: Role) -> QcSession:
    """Resolve everything a QC session needs, checking it all before collection.

    Parameters
    ----------
    config : pytest.Config
        For the ``pytest_segqc_make_predictor`` hook.
    settings : Settings
        The resolved options (``settings.active`` must be true).
    role : {"single", "controller", "worker"}
        This process's part in a pytest-xdist run (:func:`segqc.xdist.role_of`).

    Raises
    ------
    SessionError
        Anything a user must fix: thresholds, QC folders, model, baseline, output folder.
    """
    assert settings.active
    loaded = _load_thresholds(settings)
    pairs, ignored, prediction_files = _pair_images(settings)
    output = None
    if role != "worker":
        try:
            output = OutputFolder(settings.output, overwrite=settings.overwrite)
        except OutputError as exc:
            raise SessionError(str(exc)) from None
    try:
        if settings.predictions is not None:
            assert prediction_files is not None
            predictor: Predictor = PredictionsFolder(settings.predictions, prediction_files)
            model_folder = None
        else:
            assert settings.model is not None
            predictor, model_folder = _model_predictor(
                config, settings, loaded, settings.model, "model", role
            )
        second_predictor = None
        if settings.compare_device is not None:
            assert settings.model is not None  # Settings.check: --compare-device needs --model
            second_predictor, _ = _model_predictor(
                config, settings, loaded, settings.model, "compare", role
            )
        baseline = _baseline(config, settings, loaded, pairs, role)
        robustness = _robustness(settings, loaded)
        _check_training_data(settings)
        _check_training_log(settings)
    except BaseException:
        if output is not None:
            output.close()
        raise
    return QcSession(
        settings=settings,
        loaded=loaded,
        pairs=pairs,
        ignored=ignored,
        predictor=predictor,
        model_folder=model_folder,
        baseline=baseline,
        robustness=robustness,
        role=role,
        output=output,
        second_predictor=second_predictor,
    )


def _load_thresholds(settings: Settings) -> LoadedThresholds:
    try:
        if settings.thresholds is not None:
            return load_thresholds(settings.thresholds)
        in_rootdir = settings.rootdir / "thresholds.yaml"
        # Anything there, also a folder or a broken link, is the user's limits file: it
        # is read (and refused with its reason), never silently replaced by the defaults.
        if os.path.lexists(in_rootdir):
            return load_thresholds(in_rootdir)
        return load_thresholds(bundled_thresholds_path(), is_bundled_default=True)
    except ThresholdsError as exc:
        raise SessionError(str(exc)) from None


def _pair_images(
    settings: Settings,
) -> tuple[tuple[QcPair, ...], tuple[Path, ...], dict[str, Path] | None]:
    """The QC pairs (with groups), ignored files, and the prediction file of each pair."""
    subfolders = settings.groups == "subfolders"
    assert settings.target is not None
    prediction_files = None
    try:
        if settings.source is not None:
            found = discover_pairs(settings.source, settings.target, subfolders=subfolders)
            pairs = found.pairs
            if settings.predictions is not None:
                prediction_files = find_prediction_files(
                    pairs, settings.predictions, subfolders=subfolders
                )
        else:  # --predictions without source images: pair predictions with targets
            assert settings.predictions is not None
            found = discover_pairs(
                settings.predictions,
                settings.target,
                source_role="predictions",
                subfolders=subfolders,
            )
            prediction_files = {p.name: p.source for p in found.pairs if p.source}
            pairs = tuple(QcPair(p.name, None, p.target, p.group) for p in found.pairs)
    except PairingError as exc:
        lines = "\n".join(f"  - {problem}" for problem in exc.problems)
        raise SessionError(f"cannot pair the QC images:\n{lines}") from None
    if isinstance(settings.groups, Path):
        try:
            groups = read_groups_file(settings.groups, [p.name for p in pairs])
        except GroupsFileError as exc:
            raise SessionError(f"--qc-groups: {exc}") from None
        pairs = tuple(dataclasses.replace(p, group=groups[p.name]) for p in pairs)
    return pairs, found.ignored, prediction_files


#: The option naming each predictor's model folder, for messages.
_OPTION_OF_ROLE = {
    "model": "--model", "baseline": "--baseline-model", "compare": "--compare-device",
}  # fmt: skip


def _model_predictor(
    config: pytest.Config,
    settings: Settings,
    loaded: LoadedThresholds,
    model_dir: Path,
    role_name: Literal["model", "baseline", "compare"],
    role: Role,
) -> tuple[Predictor, ModelFolder | None]:
    """The predictor of a model folder: a plugin's (``pytest_segqc_make_predictor``), else
    StarDist's, wrapped in the prediction cache.

    ``role_name="compare"`` is the second predictor of ``--compare-device``: the model
    under test again, its predictions placed on the other device, and never cached,
    since the point is to predict again.
    """
    custom = config.hook.pytest_segqc_make_predictor(
        config=config, model_dir=model_dir, role=role_name
    )
    if custom is not None:  # a plugin's own predictor (see segqc.hookspecs)
        return custom, None
    option = _OPTION_OF_ROLE[role_name]
    try:
        folder = inspect_model_folder(model_dir)
    except ModelFolderError as exc:
        raise SessionError(str(exc) if role_name == "model" else f"{option}: {exc}") from None
    if importlib.util.find_spec("tensorflow") is None:
        instead = "" if role_name == "compare" else ", or use --predictions"
        raise SessionError(
            f"TensorFlow is not installed, so {option} cannot predict; "
            f"pip install 'segqc[cpu]' (or 'segqc[gpu]'){instead}"
        )
    from segqc.predict.stardist import (
        StarDistPredictor,
        placed_device,
        resolve_parameters,
        select_device,
    )

    placement = settings.compare_device if role_name == "compare" else None
    try:  # fail now, at configure time, rather than after collection
        if settings.device == "gpu" and role_name == "model":
            select_device("gpu")
        if placement == "gpu":
            placed_device("gpu")
    except DeviceError as exc:
        raise SessionError(str(exc)) from None
    parameters = resolve_parameters(folder, loaded.thresholds.prediction)
    stardist = StarDistPredictor(folder, parameters, device=settings.device, placement=placement)
    if role_name == "compare":
        return stardist, folder
    return _with_cache(settings, stardist, role), folder


def _with_cache(settings: Settings, predictor: Any, role: Role) -> Predictor:
    """Wrap ``predictor`` in the prediction cache unless ``--no-cache`` (see segqc.predict.cache).

    On an xdist worker a cache folder that cannot be written is not an error: the
    worker may run on another machine, where the controller's path means nothing.
    """
    if settings.no_cache:
        return predictor
    from segqc.predict.cache import CachingPredictor, PredictionCache, stardist_cache_settings

    folder = settings.cache or settings.output / "cache"
    try:
        PredictionCache.check_writable(folder)
    except OutputError as exc:
        if role == "worker":
            return predictor
        raise SessionError(str(exc)) from None
    return CachingPredictor(
        predictor,
        PredictionCache(folder),
        settings=stardist_cache_settings(predictor),
        n_dim=predictor.folder.n_dim,
    )


def _baseline(
    config: pytest.Config,
    settings: Settings,
    loaded: LoadedThresholds,
    pairs: tuple[QcPair, ...],
    role: Role,
) -> BaselineSetup | None:
    predictor = model_folder = None
    if settings.baseline_model is not None:
        if any(pair.source is None for pair in pairs):
            raise SessionError("--baseline-model needs the QC source images: give --qc-source")
        predictor, model_folder = _model_predictor(
            config, settings, loaded, settings.baseline_model, "baseline", role
        )
    try:
        return setup_baseline(
            settings, loaded, pairs, predictor=predictor, model_folder=model_folder
        )
    except BaselineSetupError as exc:
        raise SessionError(str(exc)) from None


def _robustness(settings: Settings, loaded: LoadedThresholds) -> RobustnessSettings | None:
    found = loaded.thresholds.robustness
    if found is None and settings.robustness:
        found = RobustnessSettings.default()
    return found


def _check_training_data(settings: Settings) -> None:
    folder = settings.training_data
    if folder is None:
        return
    if not folder.is_dir():
        raise SessionError(f"--training-data {folder}: folder does not exist")
    if not list_training_images(folder):
        raise SessionError(
            f"--training-data {folder}: contains no .tif/.tiff images "
            "(give the folder of training source images)"
        )


def _check_training_log(settings: Settings) -> None:
    log = settings.training_log
    if log is not None and not log.exists():
        raise SessionError(
            f"--training-log {log}: no such file or folder; give a CSV "
            "(loss, val_loss) or a TensorBoard logs folder"
        )


def outcomes_by_name(outcomes: Iterable[ImageOutcome]) -> dict[str, ImageOutcome]:
    """Outcomes keyed by image name."""
    return {o.pair.name: o for o in outcomes}
