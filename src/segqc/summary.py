"""Build ``summary.json``: everything a CI job or a reviewer needs about one QC run.

Schema (``schema_version`` 1) — documented in the README, section "Outputs":

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
* ``limits``: every verdict (scope, subject, metric, value, min, max, level, outcome, key)
* ``accuracy_vs_iou``: the pooled QC set matched at IoU 0.1 … 0.9 (see segqc.accuracy)
* ``tests``: pytest outcome counts
* sections added by other stages (``run.summary_sections``): ``statistics``, ``regression``,
  ``robustness``, ``leakage``, ``subgroups`` (:mod:`segqc.generalisation`)
* ``loss_curve``: the training history checked (source, format, epochs), every check's
  verdict, message and key numbers, and the figure (see :mod:`segqc.loss_session`)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from segqc import __version__
from segqc.model_folder import sha256_of
from segqc.pairing import QcPair
from segqc.session import DatasetOutcome, QcRun, iter_verdicts

__all__ = ["SCHEMA_VERSION", "build_summary", "package_versions", "qc_content_hash"]

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


def build_summary(
    run: QcRun,
    dataset: DatasetOutcome,
    *,
    status: str,
    qc_folders: dict[str, str],
    ignored_files: list[str],
    test_counts: dict[str, int],
    loss_curve: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the summary.json document of a run (see the module docstring)."""
    from segqc.accuracy import accuracy_vs_iou

    accuracy = accuracy_vs_iou(run)
    predictor = run.predictor.describe()
    if run.model_folder is not None:
        predictor["weights_sha256"] = sha256_of(run.model_folder.weights)
        predictor["name"] = run.model_folder.name
    loaded = run.thresholds
    return {
        "schema_version": SCHEMA_VERSION,
        "segqc_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "status": status,
        "complete": run.complete,
        "predictor": predictor,
        "qc": {
            **qc_folders,
            "n_pairs": len(run.pairs),
            "n_evaluated": len(run.outcomes),
            "content_sha256": qc_content_hash(run.pairs),
            "ignored_files": ignored_files,
        },
        "thresholds": {
            "path": str(loaded.path),
            "bundled_default": loaded.is_bundled_default,
            "content": loaded.thresholds.model_dump(exclude_none=True),
        },
        "matching": {"iou_threshold": run.iou_threshold},
        "images": [
            {
                "name": o.pair.name,
                "source": str(o.pair.source) if o.pair.source else None,
                "target": str(o.pair.target),
                "status": "error" if o.error else "evaluated",
                "error": o.error,
                "metrics": o.scores.values() if o.scores else None,
                "prediction_file": str(o.prediction_file) if o.prediction_file else None,
                "n_tiles": list(o.n_tiles) if o.n_tiles else None,
                "cached": o.cached,
                "seconds": round(o.seconds, 3),
                "notes": o.notes,
            }
            for o in run.outcomes
        ],
        "aggregate": {
            "n_images": dataset.n_images,
            "pooled": dataset.pooled.values() if dataset.pooled else None,
            "image_mean": dataset.mean,
        },
        "limits": [v.as_dict() for v in iter_verdicts(run, dataset)]
        + ([v.as_dict() for v in accuracy.verdicts] if accuracy else []),
        "accuracy_vs_iou": accuracy.as_dict() if accuracy else None,
        "tests": test_counts,
        "loss_curve": loss_curve,
        "versions": package_versions(),
        **{key: build() for key, build in run.summary_sections.items()},
    }


def run_status(run: QcRun, dataset: DatasetOutcome, *, exitstatus: int) -> str:
    """``interrupted`` (stopped before every image was evaluated), ``failed`` or ``passed``.

    A run in which no image test ran (``-k loss``) is not interrupted: its status comes
    from its tests (``complete`` stays false).
    """
    if exitstatus == 2 or (run.outcomes and not run.complete):  # 2: ExitCode.INTERRUPTED
        return "interrupted"
    broken = any(v.outcome == "fail" for v in iter_verdicts(run, dataset))
    if broken or any(o.error for o in run.outcomes) or exitstatus not in (0, 5):
        return "failed"
    return "passed"
