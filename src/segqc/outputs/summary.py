"""Build ``summary.json``: everything a CI job or a reviewer needs about one QC run.

Schema (``schema_version`` 1) — documented in docs/outputs.md:

* ``status``: ``passed`` | ``failed`` | ``interrupted``; ``complete``: every image evaluated
* ``segqc_version``, ``created`` (UTC, ISO 8601), ``versions`` (package versions)
* ``predictor``: model path, weights file and sha256, prob/nms used and their source,
  device — or the predictions folder
* ``qc``: source/target folders, number of pairs, content hash, ignored files
* ``thresholds``: file path, whether it is the bundled default, its parsed content
* ``matching``: ``iou_threshold``
* ``images``: one record per image (name, status, error, metrics, prediction file,
  n_tiles, seconds)
* ``aggregate``: ``pooled`` and ``image_mean`` metrics over evaluated images
* ``limits``: every verdict (scope, subject, metric, value, min, max, level, passed,
  outcome, key, message)
* ``accuracy_vs_iou``: the pooled QC set matched at IoU 0.1 … 0.9 (see segqc.checks.accuracy)
* ``tests``: pytest outcome counts
* ``loss_curve``: the training history checked (source, format, epochs), every check's
  verdict, message and key numbers, and the figure (see :mod:`segqc.checks.loss`)
* ``versions``: package versions
* the checks' sections, through the ``pytest_segqc_summary_section`` hook:
  ``statistics``, ``regression``, ``robustness``, ``leakage``, ``subgroups``,
  ``device_agreement`` (null when the check did not run)

``images`` and ``limits`` grow with the QC set; in the document they are :class:`Records`,
built from the outcomes and the limits each time they are read, so that the summary of
10,000 images is not 40 MB of dicts held to be written once (see :class:`Records`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import platform
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from segqc import __version__
from segqc.checks.accuracy import AccuracyCurve
from segqc.checks.quality import DatasetOutcome
from segqc.checks.verdict import Verdict
from segqc.data.pairing import QcPair
from segqc.pipeline.outcome import ImageOutcome
from segqc.predict.model_folder import sha256_of
from segqc.thresholds import LoadedThresholds

__all__ = [
    "SCHEMA_VERSION",
    "Records",
    "build_summary",
    "image_record",
    "package_versions",
    "qc_content_hash",
    "run_status",
]

SCHEMA_VERSION = 1

_PACKAGES = (
    "segqc", "stardist", "csbdeep", "tensorflow", "tensorflow-cpu", "keras", "numpy",
    "scipy", "scikit-image", "tifffile", "pytest", "pytest-html",
)  # fmt: skip


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape the results (absent ones omitted)."""
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def qc_content_hash(pairs: tuple[QcPair, ...]) -> str:
    """SHA-256 over the names and contents of every QC source and target file."""
    digest = hashlib.sha256()
    for pair in pairs:
        for path in (pair.source, pair.target):
            if path is None:
                continue
            try:
                file_hash = sha256_of(path)
            except OSError:
                file_hash = "unreadable"
            digest.update(f"{path.parent.name}/{path.name}:{file_hash}\n".encode())
    return digest.hexdigest()


#: summary.json's keys in order; the sections of the checks come from the
#: ``pytest_segqc_summary_section`` hook and are placed here whatever order it returns them.
CORE_KEYS: tuple[str, ...] = (
    "schema_version", "segqc_version", "created", "status", "complete", "predictor", "qc",
    "thresholds", "matching", "images", "aggregate", "limits", "accuracy_vs_iou", "tests",
)  # fmt: skip
SECTION_ORDER: tuple[str, ...] = (
    "loss_curve", "versions", "statistics", "regression", "robustness", "leakage", "subgroups",
    "device_agreement",
)  # fmt: skip


class Records(Sequence[dict[str, Any]]):
    """A list of summary.json records that are built each time they are read.

    The document holds a record per image (``images``) and per verdict (``limits``):
    about 4 KB per image, 40 MB at 10,000 images, held only to be written to
    summary.json and read once by the report and the terminal summary. A ``Records``
    keeps what the records are made of (the outcomes, the limits in force) and builds
    each record when it is read, so the document costs no more memory than the outcomes
    it describes. Every read gives the same records, since they follow from data that
    no longer changes when the document is built.

    It reads like a list: ``len``, iteration, indexing (by walking the records; the
    document is read in order) and ``==`` with a list. Each read builds fresh dicts:
    changing one changes neither the document nor summary.json.

    Parameters
    ----------
    make : callable
        Returns an iterator over the records, in order, on each call.
    length : int, optional
        The number of records, when known without building them.
    """

    __slots__ = ("_length", "_make")

    def __init__(
        self, make: Callable[[], Iterable[dict[str, Any]]], length: int | None = None
    ) -> None:
        self._make = make
        self._length = length

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._make())

    def __len__(self) -> int:
        if self._length is None:
            self._length = sum(1 for _ in self._make())
        return self._length

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return list(self)[index]
        position = index + len(self) if index < 0 else index
        if not 0 <= position < len(self):
            raise IndexError(f"record {index} of {len(self)}")
        return next(itertools.islice(self._make(), position, None))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to a list, so unhashable like one

    def __repr__(self) -> str:
        return f"<Records: {len(self)} summary.json records>"


def image_record(outcome: ImageOutcome) -> dict[str, Any]:
    """One image of summary.json's ``images`` list."""
    return {
        "name": outcome.pair.name,
        "source": str(outcome.pair.source) if outcome.pair.source else None,
        "target": str(outcome.pair.target),
        "status": "error" if outcome.error else "evaluated",
        "error": outcome.error,
        "metrics": outcome.scores.values() if outcome.scores else None,
        "prediction_file": str(outcome.prediction_file) if outcome.prediction_file else None,
        "n_tiles": list(outcome.n_tiles) if outcome.n_tiles else None,
        "cached": outcome.cached,
        "seconds": round(outcome.seconds, 3),
        "notes": list(outcome.notes),
        **({"blocks": dict(outcome.blocks)} if outcome.blocks else {}),
    }


def build_summary(
    *,
    status: str,
    complete: bool,
    predictor: Mapping[str, Any],
    qc: Mapping[str, Any],
    loaded: LoadedThresholds,
    iou_threshold: float,
    outcomes: Sequence[ImageOutcome],
    dataset: DatasetOutcome,
    limits: Callable[[], Iterable[Verdict]],
    accuracy: AccuracyCurve | None,
    tests: Mapping[str, int],
    sections: Mapping[str, Any],
) -> dict[str, Any]:
    """Assemble the summary.json document of a run (see the module docstring).

    Parameters
    ----------
    status : str
        :func:`run_status`.
    complete : bool
        Whether every QC image was evaluated.
    predictor : mapping
        What predicted (``Predictor.describe()`` plus weights hash, name, device).
    qc : mapping
        The QC folders, counts, content hash and ignored files.
    loaded : LoadedThresholds
        The thresholds file in force.
    iou_threshold : float
        The matching threshold.
    outcomes : sequence of ImageOutcome
        Every image with an outcome, in QC order; ``images`` is built from it when read.
    dataset : DatasetOutcome
        The pooled and image-mean scores.
    limits : callable
        Returns every metric-limit verdict (per image, pooled, image mean,
        ``aggregate_at``), in order, on each call; ``limits`` is built from it when read.
    accuracy : AccuracyCurve or None
        The accuracy curve.
    tests : mapping
        pytest outcome counts of the QC tests.
    sections : mapping
        The checks' sections (``pytest_segqc_summary_section``).
    """
    evaluated = tuple(outcomes)
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "segqc_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "status": status,
        "complete": complete,
        "predictor": dict(predictor),
        "qc": dict(qc),
        "thresholds": {
            "path": str(loaded.path),
            "bundled_default": loaded.is_bundled_default,
            "content": loaded.thresholds.model_dump(exclude_none=True),
        },
        "matching": {"iou_threshold": iou_threshold},
        "images": Records(lambda: map(image_record, evaluated), len(evaluated)),
        "aggregate": {
            "n_images": dataset.n_images,
            "pooled": dataset.pooled.values() if dataset.pooled else None,
            "image_mean": dataset.mean,
        },
        "limits": Records(lambda: (verdict.as_dict() for verdict in limits())),
        "accuracy_vs_iou": accuracy.as_dict() if accuracy else None,
        "tests": dict(tests),
    }
    extra = {**sections, "versions": package_versions()}
    for key in SECTION_ORDER:
        document[key] = extra.get(key)
    for key in sorted(set(extra) - set(SECTION_ORDER) - set(CORE_KEYS)):
        document[key] = extra[key]
    return document


def run_status(
    *,
    interrupted: bool,
    complete: bool,
    any_evaluated: bool,
    broken: bool,
    errors: bool,
    exitstatus: int,
) -> str:
    """``interrupted`` (stopped before every image was evaluated), ``failed`` or ``passed``.

    A run in which no image test ran (``-k loss``) is not interrupted: its status comes
    from its tests (``complete`` stays false).
    """
    if interrupted or exitstatus == 2 or (any_evaluated and not complete):  # 2: INTERRUPTED
        return "interrupted"
    if broken or errors or exitstatus not in (0, 5):
        return "failed"
    return "passed"
