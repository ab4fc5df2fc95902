"""Where predicted label images come from: one interface, :class:`Predictor`.

* :class:`~segqc.predict.stardist.StarDistPredictor` loads a StarDist2D/3D model folder
  (:mod:`segqc.predict.model_folder`) and predicts; TensorFlow is imported only when the
  first image is predicted.
* :class:`~segqc.predict.folder.PredictionsFolder` reads label images another tool
  already wrote (``--predictions``); TensorFlow is never imported.
* :class:`~segqc.predict.cache.CachingPredictor` wraps a model's predictor with the
  prediction cache.

A plugin can supply its own predictor through the ``pytest_segqc_make_predictor`` hook
(:mod:`segqc.hookspecs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from segqc.data.pairing import QcPair

__all__ = ["PredictionResult", "Predictor"]


@dataclass(frozen=True)
class PredictionResult:
    """Predicted labels plus how they were made.

    ``n_tiles`` is None for predictions read from a folder; ``path`` is the file they were
    read from, if any (used in messages). ``cached`` is True when the labels came from
    segqc's prediction cache. ``blocks`` describes a block-wise prediction (block size,
    context, number of blocks), None otherwise.
    """

    labels: np.ndarray
    n_tiles: tuple[int, ...] | None = None
    path: Path | None = None
    cached: bool = False
    blocks: Mapping[str, Any] | None = None


class Predictor(Protocol):
    """Anything that yields a predicted label image for a QC pair."""

    def predict(self, pair: QcPair, image: np.ndarray | None) -> PredictionResult:
        """Return the predicted labels of ``pair`` (``image``: the source, if needed)."""
        ...

    @property
    def needs_source_image(self) -> bool:
        """Whether :meth:`predict` needs the source image."""
        ...

    def describe(self) -> dict[str, Any]:
        """What produced the predictions, for summary.json and the report."""
        ...
