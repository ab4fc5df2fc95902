"""The baseline file: what a released model scored on the QC set, to compare against later.

A small, indented JSON file a person can read and diff::

    {"schema": "segqc-baseline", "schema_version": 1, "segqc_version": "0.1.0",
     "created": "2025-01-01T12:00:00+00:00",
     "model": {"path": ..., "weights_sha256": ..., "prob_thresh": ..., "nms_thresh": ...},
     "matching": {"iou_threshold": 0.5}, "thresholds": {"path": ..., "content": {...}},
     "images": [{"name": "a.tif", "source_sha256": ..., "target_sha256": ...,
                 "metrics": {every metric}, "counts": {the counts they come from}}, ...],
     "aggregate": {"pooled": {...}, "image_mean": {...}}}

Per image it keeps the counts the metrics come from (``QcScores.to_dict``: foreground
pixels, matching counts and IoU sums, community-metric counts), so a baseline file gives
exactly the scores, pooled included, the run that wrote it had. It is read with
``json`` and validated with pydantic; nothing in it is ever executed. Like every file a
user hands segqc, it is read through :mod:`segqc.data.config_files` (a regular file of at most
1 MiB, nested at most 100 levels deep).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from segqc import __version__
from segqc.data.config_files import ConfigFileError, load_json, read_config_text
from segqc.data.pairing import QcPair
from segqc.data.writing import write_json
from segqc.metrics.scores import QcScores, image_mean, pool
from segqc.predict.model_folder import sha256_of

__all__ = [
    "SCHEMA",
    "Baseline",
    "BaselineError",
    "DataMismatch",
    "baseline_document",
    "compare_data",
    "content_hashes",
    "read_baseline",
    "write_baseline",
]

SCHEMA = "segqc-baseline"


class BaselineError(ValueError):
    """A baseline file cannot be read or used; the message names the file and the fix."""


class BaselineImage(BaseModel):
    """One QC image of the baseline: identity (hashes), metrics to read, counts to re-pool."""

    model_config = ConfigDict(extra="forbid")
    name: str
    source_sha256: str | None = None
    target_sha256: str
    metrics: dict[str, float | None]
    counts: dict[str, Any]

    @field_validator("counts")
    @classmethod
    def _rebuildable(cls, counts: dict[str, Any]) -> dict[str, Any]:
        try:
            QcScores.from_dict(counts)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"cannot rebuild the scores ({type(exc).__name__}: {exc})") from None
        return counts

    def scores(self) -> QcScores:
        """The image's :class:`QcScores`, exactly as the run that wrote the baseline had them."""
        return QcScores.from_dict(self.counts)


class _Matching(BaseModel):
    iou_threshold: float = Field(gt=0.0, le=1.0)


class Baseline(BaseModel):
    """A validated baseline file."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    schema_: Literal["segqc-baseline"] = Field(alias="schema")
    schema_version: Literal[1]
    segqc_version: str
    created: str
    model: dict[str, Any]
    matching: _Matching
    thresholds: dict[str, Any] = {}
    images: list[BaselineImage] = Field(min_length=1)

    def scores(self) -> dict[str, QcScores]:
        """Scores by image name, in file order."""
        return {image.name: image.scores() for image in self.images}

    def describe(self) -> str:
        """One line naming the model and date, for messages."""
        what = self.model.get("path") or self.model.get("kind") or "unknown model"
        return f"{what} (baseline of {self.created})"


def content_hashes(pairs: tuple[QcPair, ...]) -> dict[str, tuple[str | None, str]]:
    """``{name: (source sha256 or None, target sha256)}`` of the QC files."""
    return {
        p.name: (sha256_of(p.source) if p.source is not None else None, sha256_of(p.target))
        for p in pairs
    }


def baseline_document(
    *,
    scores: dict[str, QcScores],
    hashes: dict[str, tuple[str | None, str]],
    model: dict[str, Any],
    iou_threshold: float,
    thresholds: dict[str, Any],
) -> dict[str, Any]:
    """The JSON document of a baseline (see the module docstring).

    Parameters
    ----------
    scores : dict of image name to QcScores
        Every QC image, in QC order.
    hashes : dict
        From :func:`content_hashes`.
    model : dict
        What produced the predictions (``Predictor.describe()`` plus ``weights_sha256``).
    iou_threshold : float
        The matching threshold the scores were measured at.
    thresholds : dict
        Path and parsed content of the thresholds file used.
    """
    images = []
    for name, s in scores.items():
        source_hash, target_hash = hashes[name]
        images.append(
            {
                "name": name,
                "source_sha256": source_hash,
                "target_sha256": target_hash,
                "metrics": s.values(),
                "counts": s.to_dict(),
            }
        )
    listed = list(scores.values())
    return {
        "schema": SCHEMA,
        "schema_version": 1,
        "segqc_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "model": model,
        "matching": {"iou_threshold": iou_threshold},
        "thresholds": thresholds,
        "images": images,
        "aggregate": {"pooled": pool(listed).values(), "image_mean": image_mean(listed)},
    }


def write_baseline(path: Path, document: dict[str, Any]) -> Path:
    """Write ``document`` atomically (temporary file, then rename).

    Raises
    ------
    segqc.data.writing.OutputError
        The file could not be written; an existing baseline is left as it was.
    """
    return write_json(path, document)


def read_baseline(path: Path) -> Baseline:
    """Read and validate a baseline file.

    Raises
    ------
    BaselineError
        Missing, unreadable, not a regular file, larger than 1 MiB, not JSON, nested too
        deeply, not a segqc baseline, or invalid; one line naming the file, the problem
        and what to do.
    """
    try:
        document = load_json(read_config_text(path, what="baseline file"), path)
    except FileNotFoundError:
        raise BaselineError(
            f"{path}: baseline file not found; write one with --update-baseline"
        ) from None
    except ConfigFileError as exc:
        raise BaselineError(str(exc)) from None
    except json.JSONDecodeError as exc:
        raise BaselineError(
            f"{path}:{exc.lineno}:{exc.colno}: not a segqc baseline (invalid JSON: {exc.msg})"
        ) from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise BaselineError(
            f'{path}: not a segqc baseline (no "schema": "{SCHEMA}"); give a file written '
            "by --update-baseline"
        )
    try:
        return Baseline.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise BaselineError(
            f"{path}: invalid segqc baseline: {where}: {first['msg']}{more}; "
            "write a new one with --update-baseline"
        ) from None


@dataclass(frozen=True)
class DataMismatch:
    """How the baseline's QC images differ from this run's."""

    only_in_baseline: list[str]
    only_in_run: list[str]
    changed: list[str]

    @property
    def differs(self) -> bool:
        """Whether the two QC sets differ at all."""
        return bool(self.only_in_baseline or self.only_in_run or self.changed)

    def lines(self) -> list[str]:
        """One line per kind of difference, listing the image names."""
        found = []
        if self.only_in_baseline:
            found.append(f"only in the baseline: {', '.join(self.only_in_baseline)}")
        if self.only_in_run:
            found.append(f"not in the baseline: {', '.join(self.only_in_run)}")
        if self.changed:
            found.append(f"content changed since the baseline: {', '.join(self.changed)}")
        return found


def compare_data(baseline: Baseline, hashes: dict[str, tuple[str | None, str]]) -> DataMismatch:
    """Compare the baseline's image names and content hashes with this run's.

    A source hash is compared only when both sides have one (``--predictions`` runs
    without ``--qc-source`` hash only the ground truth).
    """
    recorded = {image.name: image for image in baseline.images}
    changed = []
    for name, (source_hash, target_hash) in hashes.items():
        image = recorded.get(name)
        if image is None:
            continue
        source_differs = (
            source_hash is not None
            and image.source_sha256 is not None
            and source_hash != image.source_sha256
        )
        if target_hash != image.target_sha256 or source_differs:
            changed.append(name)
    return DataMismatch(
        only_in_baseline=[n for n in recorded if n not in hashes],
        only_in_run=[n for n in hashes if n not in recorded],
        changed=changed,
    )
