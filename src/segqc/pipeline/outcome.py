"""What happened to one QC image: the measured facts, as plain data.

An :class:`ImageOutcome` holds what was measured (or why nothing could be), never a
verdict: verdicts follow from the scores and the limits (:mod:`segqc.checks.quality`),
so they are judged wherever they are needed and never travel. :func:`outcome_to_dict`
and :func:`outcome_from_dict` turn an outcome into built-in types and back, for
pytest-xdist's channel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from segqc.data.pairing import QcPair
from segqc.metrics.matching import MatchingCurve, MatchingStats
from segqc.metrics.object_matches import AreaBins
from segqc.metrics.scores import QcScores

__all__ = ["DeviceComparison", "ImageOutcome", "outcome_from_dict", "outcome_to_dict"]


@dataclass(frozen=True, slots=True)
class DeviceComparison:
    """The image predicted a second time, on another device (``--compare-device``).

    Attributes
    ----------
    device : str
        Where the second prediction ran (``CPU``, ``GPU (<name>)``, or what a plugin's
        predictor says of itself).
    mismatched_pixels : int
        Pixels on which the two predictions disagree, whatever their label numbering
        (:func:`segqc.metrics.matching.mismatched_pixels_of`).
    pixels : int
        Pixels (voxels) of the image.
    scores : QcScores or None
        The second prediction measured against the ground truth.
    error : str or None
        Why there is no second prediction (one line); the other fields are then 0/None.
    """

    device: str
    mismatched_pixels: int = 0
    pixels: int = 0
    scores: QcScores | None = None
    error: str | None = None

    @property
    def mismatched_per_million(self) -> float:
        """Mismatched pixels per million pixels of the image."""
        return 1e6 * self.mismatched_pixels / self.pixels if self.pixels else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Built-in types only (see :func:`outcome_to_dict`)."""
        return {
            "device": self.device,
            "mismatched_pixels": self.mismatched_pixels,
            "pixels": self.pixels,
            "scores": None if self.scores is None else self.scores.to_dict(),
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeviceComparison:
        """Rebuild what :meth:`to_dict` gave."""
        scores = data.get("scores")
        return cls(
            device=str(data["device"]),
            mismatched_pixels=int(data["mismatched_pixels"]),
            pixels=int(data["pixels"]),
            scores=None if scores is None else QcScores.from_dict(scores),
            error=data.get("error"),
        )


@dataclass(frozen=True, slots=True)
class ImageOutcome:
    """The measured facts of one QC image.

    Attributes
    ----------
    pair : QcPair
        The image and its ground truth.
    scores : QcScores or None
        None when the image could not be evaluated; ``error`` then says why.
    error : str or None
        One line starting with the file at fault.
    prediction_file : Path or None
        Where the predicted labels are: the file segqc wrote (``--model``) or the other
        tool's file (``--predictions``).
    n_tiles : tuple of int or None
        How StarDist tiled the image (None for predictions read from a folder).
    blocks : dict or None
        The block layout of a block-wise prediction (``--model`` on a large image).
    seconds : float
        Time spent on the image.
    notes : tuple of str
        Things a user should know (a binary mask taken as connected components, ...).
    cached : bool
        Whether the prediction came from the prediction cache.
    curve : MatchingCurve or None
        The image matched at every threshold of the accuracy curve
        (:func:`segqc.checks.accuracy.curve_thresholds`): a sequence of MatchingStats
        kept compactly, since every image's curve is kept until the run ends.
    area_bins : AreaBins or None
        Ground-truth objects counted by area bin (``subgroups.object_size``), or None
        when no size bins are set.
    comparison : DeviceComparison or None
        The second prediction on another device (``--compare-device``), or None.
    """

    pair: QcPair
    scores: QcScores | None = None
    error: str | None = None
    prediction_file: Path | None = None
    n_tiles: tuple[int, ...] | None = None
    blocks: Mapping[str, Any] | None = None
    seconds: float = 0.0
    notes: tuple[str, ...] = ()
    cached: bool = False
    curve: MatchingCurve | None = None
    area_bins: AreaBins | None = None
    comparison: DeviceComparison | None = None

    @property
    def evaluated(self) -> bool:
        """Whether the image has scores."""
        return self.scores is not None


def outcome_to_dict(outcome: ImageOutcome) -> dict[str, Any]:
    """An outcome as built-in types only (see :func:`outcome_from_dict`)."""
    pair = outcome.pair
    return {
        "pair": {
            "name": pair.name,
            "source": str(pair.source) if pair.source else None,
            "target": str(pair.target),
            "group": pair.group,
        },
        "scores": None if outcome.scores is None else outcome.scores.to_dict(),
        "error": outcome.error,
        "prediction_file": str(outcome.prediction_file) if outcome.prediction_file else None,
        "n_tiles": list(outcome.n_tiles) if outcome.n_tiles is not None else None,
        "blocks": dict(outcome.blocks) if outcome.blocks is not None else None,
        "seconds": outcome.seconds,
        "notes": list(outcome.notes),
        "cached": outcome.cached,
        "curve": None if outcome.curve is None else [asdict(s) for s in outcome.curve],
        "area_bins": None if outcome.area_bins is None else outcome.area_bins.to_dict(),
        "comparison": None if outcome.comparison is None else outcome.comparison.to_dict(),
    }


def outcome_from_dict(
    data: Mapping[str, Any], *, pairs: Mapping[str, QcPair] | None = None
) -> ImageOutcome:
    """Rebuild an :class:`ImageOutcome`; ``pairs`` supplies the receiver's own QcPair."""
    raw_pair = data["pair"]
    pair = (pairs or {}).get(raw_pair["name"]) or QcPair(
        raw_pair["name"],
        Path(raw_pair["source"]) if raw_pair["source"] else None,
        Path(raw_pair["target"]),
        raw_pair.get("group"),
    )
    curve = data.get("curve")
    return ImageOutcome(
        pair=pair,
        scores=None if data["scores"] is None else QcScores.from_dict(data["scores"]),
        error=data["error"],
        prediction_file=Path(data["prediction_file"]) if data["prediction_file"] else None,
        n_tiles=tuple(data["n_tiles"]) if data["n_tiles"] is not None else None,
        blocks=data.get("blocks"),
        seconds=float(data["seconds"]),
        notes=tuple(data.get("notes") or ()),
        cached=bool(data["cached"]),
        curve=MatchingCurve(MatchingStats(**stats) for stats in curve) if curve else None,
        area_bins=AreaBins.from_dict(data["area_bins"]) if data.get("area_bins") else None,
        comparison=(
            DeviceComparison.from_dict(data["comparison"]) if data.get("comparison") else None
        ),
    )
