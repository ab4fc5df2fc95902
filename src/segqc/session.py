"""One QC run: pairs in, per-image outcomes and dataset verdicts out.

:class:`QcRun` is the only stateful object of segqc. It evaluates each image at most
once (predict → measure → judge), keeps only metrics in memory (predictions go to disk),
and is shared by the QC tests through the plugin's fixtures.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segqc.accuracy import curve_thresholds
from segqc.axes import read_source_image
from segqc.cache import PictureCache, array_sha256, picture_key
from segqc.images import ImageReadError, read_tiff
from segqc.judge import Verdict, judge
from segqc.metrics.matching import (
    LabelImageError,
    MatchedPairs,
    MatchingStats,
    check_label_image,
    label_overlaps,
    match_overlaps_at,
    matched_pairs_of,
)
from segqc.metrics.object_matches import ObjectMatches, object_matches_of
from segqc.metrics.scores import QcScores, image_mean, measure, pool
from segqc.model_folder import ModelFolder, sha256_of
from segqc.outputs import OutputError, write_label_image
from segqc.pairing import QcPair
from segqc.prediction import ImageInputError, ModelLoadError, PredictionResult, Predictor
from segqc.thresholds import LoadedThresholds

__all__ = ["DatasetOutcome", "ImageOutcome", "QcRun"]


@dataclass
class ImageOutcome:
    """What happened to one QC image.

    ``scores`` is None when the image could not be evaluated; ``error`` then says why,
    in one line starting with the file at fault. ``cached`` is True when the prediction
    came from the prediction cache (:mod:`segqc.cache`). ``curve`` holds the image's
    matching at every threshold of the accuracy curve (:mod:`segqc.accuracy`), and
    ``visual_file`` its drawn report panels (:mod:`segqc.report.visuals`), both made
    where the image was evaluated so the controller only pools and embeds them.
    """

    pair: QcPair
    scores: QcScores | None = None
    error: str | None = None
    prediction_file: Path | None = None
    n_tiles: tuple[int, ...] | None = None
    seconds: float = 0.0
    verdicts: list[Verdict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cached: bool = False
    objects: ObjectMatches | None = None  # per-object matches, for the size-bin subgroups
    curve: tuple[MatchingStats, ...] | None = None
    visual_file: Path | None = None


@dataclass(frozen=True)
class _Predicted:
    """An image between the two stages of its evaluation."""

    target: np.ndarray
    result: PredictionResult


#: What makes one image fail without stopping the run; the message goes in the outcome.
_IMAGE_ERRORS = (ImageReadError, LabelImageError, ImageInputError, ModelLoadError, OutputError)


@contextlib.contextmanager
def _image_errors(outcome: ImageOutcome) -> Iterator[None]:
    try:
        yield
    except _IMAGE_ERRORS as exc:
        outcome.error = str(exc)


@dataclass(frozen=True)
class DatasetOutcome:
    """Scores over all evaluated images: pooled and image mean, with their verdicts."""

    n_images: int
    pooled: QcScores | None
    mean: dict[str, float] | None
    pooled_verdicts: list[Verdict]
    mean_verdicts: list[Verdict]


class QcRun:
    """Evaluate QC pairs with a predictor and judge them against thresholds.

    Parameters
    ----------
    pairs : tuple of QcPair
        The images to evaluate.
    thresholds : LoadedThresholds
        Limits and matching settings.
    predictor : Predictor
        Where predicted labels come from.
    output_dir : Path
        Where predictions are written (``predictions/``) when they are computed here.
    model_folder : ModelFolder, optional
        The model under test (None in ``--predictions`` mode).
    """

    def __init__(
        self,
        *,
        pairs: tuple[QcPair, ...],
        thresholds: LoadedThresholds,
        predictor: Predictor,
        output_dir: Path,
        model_folder: ModelFolder | None = None,
    ) -> None:
        self.pairs = pairs
        self.thresholds = thresholds
        self.predictor = predictor
        self.output_dir = output_dir
        self.model_folder = model_folder
        self._outcomes: dict[str, ImageOutcome] = {}
        #: Extra top-level summary.json sections, built at the end of the session.
        self.summary_sections: dict[str, Callable[[], Any]] = {}
        #: Where each image's report panels are saved when evaluated (None: no report).
        self.visuals_dir: Path | None = None
        #: Panels drawn by earlier runs, by content (set with the prediction cache).
        self.picture_cache: PictureCache | None = None

    @property
    def iou_threshold(self) -> float:
        """The matching IoU threshold in force."""
        return self.thresholds.thresholds.matching.iou_threshold

    @property
    def outcomes(self) -> list[ImageOutcome]:
        """Outcomes evaluated so far, in pair order."""
        return [self._outcomes[p.name] for p in self.pairs if p.name in self._outcomes]

    def outcome_of(self, name: str) -> ImageOutcome | None:
        """The outcome of the pair named ``name``, or None if it is not evaluated yet."""
        return self._outcomes.get(name)

    @property
    def complete(self) -> bool:
        """Whether every pair has been evaluated."""
        return len(self._outcomes) == len(self.pairs)

    def pending(self) -> list[QcPair]:
        """Pairs not evaluated yet."""
        return [p for p in self.pairs if p.name not in self._outcomes]

    def evaluate(self, pair: QcPair) -> ImageOutcome:
        """Evaluate ``pair`` once (later calls return the same outcome)."""
        if pair.name not in self._outcomes:
            self._outcomes[pair.name] = self._evaluate(pair)
        return self._outcomes[pair.name]

    def record(self, outcome: ImageOutcome) -> None:
        """Keep an outcome evaluated elsewhere (an xdist worker); the first one wins."""
        self._outcomes.setdefault(outcome.pair.name, outcome)

    def evaluate_all(
        self,
        *,
        on_image: Callable[[ImageOutcome, int, int], None] | None = None,
        background: Sequence[Callable[[], None]] = (),
    ) -> list[ImageOutcome]:
        """Evaluate every pending pair, calling ``on_image(outcome, done, total)`` after each.

        When a model predicts, each image is measured and drawn on a second thread while
        the model predicts the next one: TensorFlow keeps about one core busy on small
        images (and none with a GPU), so segqc's own per-image work fits beside it. At
        most one image is measured while the next is predicted; outcomes are recorded
        and reported in pair order, and an interrupted run keeps every image finished.

        Parameters
        ----------
        on_image : callable, optional
            Called on this thread after each image, in pair order.
        background : sequence of callables
            Other work for that second thread (e.g. drawing the loss figure), started
            once the model has loaded, when TensorFlow no longer holds Python's
            interpreter lock; they must not raise. Not run without a model (the caller
            runs them itself later).
        """
        pending = self.pending()
        if not self.predictor.needs_source_image or len(pending) < 2:
            for pair in pending:
                self._finished(self.evaluate(pair), on_image)
            return self.outcomes
        from concurrent.futures import Future, ThreadPoolExecutor

        in_flight: Future[ImageOutcome] | None = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="segqc-measure") as pool:
            try:
                for index, pair in enumerate(pending):
                    outcome, predicted = self._predicted(pair)
                    if index == 0:
                        for job in background:
                            pool.submit(job)
                    if in_flight is not None:
                        done, in_flight = in_flight, None
                        self._finished(done.result(), on_image)
                    if predicted is None:  # not predicted: nothing left to measure
                        self._finished(self._judged(outcome), on_image)
                    else:
                        in_flight = pool.submit(self._measured, outcome, predicted)
            finally:  # also on Ctrl-C: keep the image being measured
                if in_flight is not None:
                    done, in_flight = in_flight, None
                    self._finished(done.result(), on_image)
        return self.outcomes

    def _finished(
        self, outcome: ImageOutcome, on_image: Callable[[ImageOutcome, int, int], None] | None
    ) -> None:
        self._outcomes.setdefault(outcome.pair.name, outcome)
        if on_image is not None:
            on_image(outcome, len(self._outcomes), len(self.pairs))

    def dataset(self) -> DatasetOutcome:
        """Pool the evaluated images and judge the aggregate and image-mean limits."""
        scores = [o.scores for o in self.outcomes if o.scores is not None]
        limits = self.thresholds.thresholds
        if not scores:
            return DatasetOutcome(0, None, None, [], [])
        pooled = pool(scores)
        mean = image_mean(scores)
        return DatasetOutcome(
            n_images=len(scores),
            pooled=pooled,
            mean=mean,
            pooled_verdicts=judge(
                pooled.values(), limits.limits("aggregate"), scope="aggregate", subject="pooled"
            ),
            mean_verdicts=judge(
                mean, limits.limits("image_mean"), scope="image_mean", subject="image mean"
            ),
        )

    def _evaluate(self, pair: QcPair) -> ImageOutcome:
        outcome, predicted = self._predicted(pair)
        if predicted is None:
            return self._judged(outcome)
        return self._measured(outcome, predicted)

    def _predicted(self, pair: QcPair) -> tuple[ImageOutcome, _Predicted | None]:
        """First stage: read the ground truth and predict (None: an error, in the outcome)."""
        started = time.perf_counter()
        outcome = ImageOutcome(pair)
        predicted = None
        with _image_errors(outcome):
            predicted = self._predict(outcome)
        outcome.seconds = time.perf_counter() - started
        return outcome, predicted

    def _measured(self, outcome: ImageOutcome, predicted: _Predicted) -> ImageOutcome:
        """Second stage: check, store, measure and draw the prediction, then judge."""
        started = time.perf_counter()
        with _image_errors(outcome):
            self._measure_into(outcome, predicted)
        outcome.seconds += time.perf_counter() - started
        return self._judged(outcome)

    def _judged(self, outcome: ImageOutcome) -> ImageOutcome:
        if outcome.scores is not None:
            outcome.verdicts = judge(
                outcome.scores.values(),
                self.thresholds.thresholds.limits("per_image"),
                scope="per_image",
                subject=outcome.pair.name,
            )
        return outcome

    def _predict(self, outcome: ImageOutcome) -> _Predicted:
        pair = outcome.pair
        target = _checked_labels(read_tiff(pair.target), pair.target, "ground truth", outcome)
        image = None
        if self.predictor.needs_source_image:
            if pair.source is None:
                raise ImageReadError(f"{pair.name}: no source image to predict from")
            # Channel axis last, checked against the model (segqc.axes).
            image = read_source_image(
                pair.source, spatial_shape=target.shape, model=self.model_folder
            )
        if image is not None:
            spatial = image.shape[: target.ndim]
            if spatial != target.shape or image.ndim not in (target.ndim, target.ndim + 1):
                raise LabelImageError(
                    f"{pair.name}: source image shape {image.shape} and ground truth shape "
                    f"{target.shape} differ"
                )
        try:
            result = self.predictor.predict(pair, image)
        except ImageInputError as exc:
            raise ImageInputError(f"{pair.source or pair.name}: {exc}") from None
        except (ImageReadError, ModelLoadError):
            raise
        except Exception as exc:  # a model failing on one image must not stop the others
            raise ImageInputError(
                f"{pair.source or pair.name}: prediction failed ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else 'no message'})"
            ) from exc
        return _Predicted(target, result)

    def _measure_into(self, outcome: ImageOutcome, stage: _Predicted) -> None:
        pair, target, result = outcome.pair, stage.target, stage.result
        predicted = _checked_labels(result.labels, result.path or pair.name, "prediction", outcome)
        if predicted.shape != target.shape:
            raise LabelImageError(
                f"{pair.name}: prediction shape {predicted.shape} and ground truth shape "
                f"{target.shape} differ"
            )
        outcome.n_tiles = result.n_tiles
        outcome.cached = result.cached
        if self.predictor.needs_source_image:
            outcome.prediction_file = write_label_image(
                self.output_dir / "predictions" / f"{pair.stem}.tif", predicted
            )
        # One overlap count serves the metrics, the object matches, the accuracy curve
        # and the error map.
        overlaps = label_overlaps(target, predicted)
        thr = self.iou_threshold
        outcome.scores = measure(target, predicted, iou_threshold=thr, overlaps=overlaps)
        pairs = matched_pairs_of(overlaps, iou_threshold=thr)
        outcome.objects = object_matches_of(overlaps, pairs)
        outcome.curve = match_overlaps_at(
            overlaps, iou_thresholds=curve_thresholds(self.thresholds.thresholds.aggregate_at)
        )
        if self.visuals_dir is not None:
            outcome.visual_file = self._save_visual(pair, target, predicted, pairs)

    def _save_visual(
        self, pair: QcPair, target: np.ndarray, predicted: np.ndarray, pairs: MatchedPairs
    ) -> Path | None:
        """Draw the report panels of an image now, while its arrays are in memory.

        With a picture cache, panels an earlier run drew from the same ground truth,
        prediction, source file and IoU threshold are used as they are.
        """
        import hashlib

        from segqc.report.visuals import (
            MAX_SIDE,
            ImageVisual,
            draw_visual,
            save_visual,
            visual_document,
        )

        assert self.visuals_dir is not None
        cache, key = self.picture_cache, ""
        if cache is not None:
            try:
                key = picture_key(
                    "image panels",
                    # as uint64: a fresh prediction (int32) and its cached copy (uint16)
                    # hold the same labels
                    target=array_sha256(target.astype(np.uint64, copy=False)),
                    predicted=array_sha256(predicted.astype(np.uint64, copy=False)),
                    source=sha256_of(pair.source) if pair.source else None,
                    iou_threshold=self.iou_threshold,
                    max_side=MAX_SIDE,
                )
            except OSError:
                cache = None  # the source cannot be read: drawing says why
            else:
                if cache.get(key) is not None:
                    return cache.path(key)
        try:
            source = read_tiff(pair.source) if pair.source else None
        except ImageReadError as exc:
            visual = ImageVisual((), f"cannot draw this image: {exc}")
        else:
            visual = draw_visual(target, predicted, source, pairs, iou_threshold=self.iou_threshold)
        if cache is not None and visual.panels:
            try:
                return cache.put(key, visual_document(visual))
            except OutputError:
                pass  # a cache is an optimisation: keep the panels with the run's own
        name = hashlib.sha256(pair.name.encode()).hexdigest()
        try:
            return save_visual(visual, self.visuals_dir / f"{name}.json")
        except OSError:
            return None  # the report then draws it from the files on disk


def _checked_labels(
    labels: np.ndarray, path: Path | str, role: str, outcome: ImageOutcome
) -> np.ndarray:
    """Check a label image; a binary mask becomes one object per connected component."""
    if labels.dtype == np.bool_:
        from skimage.measure import label

        outcome.notes.append(
            f"{path}: binary {role} mask; objects taken as its connected components "
            "(touching objects merge — save a label image to avoid this)"
        )
        return np.asarray(label(labels, connectivity=1))
    try:
        return check_label_image(labels, role=role)
    except LabelImageError as exc:
        raise LabelImageError(f"{path}: {exc}") from None


def iter_verdicts(run: QcRun, dataset: DatasetOutcome) -> Iterator[Verdict]:
    """Every verdict of a run: per image, then pooled, then image mean."""
    for outcome in run.outcomes:
        yield from outcome.verdicts
    yield from dataset.pooled_verdicts
    yield from dataset.mean_verdicts
