"""Predictions another tool already wrote: one label TIFF per QC image (``--predictions``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from segqc.data.images import read_tiff
from segqc.data.pairing import QcPair
from segqc.predict import PredictionResult

__all__ = ["PredictionsFolder"]


class PredictionsFolder:
    """Read the prediction of each QC pair from a folder.

    Parameters
    ----------
    folder : Path
        The ``--predictions`` folder.
    files : dict of str to Path
        The prediction file of each pair, by pair name
        (:func:`segqc.data.pairing.find_prediction_files`).
    """

    needs_source_image = False

    def __init__(self, folder: Path, files: dict[str, Path]) -> None:
        self.folder = folder
        self.files = files

    def predict(self, pair: QcPair, image: np.ndarray | None) -> PredictionResult:
        """Read the prediction file of ``pair``."""
        path = self.files[pair.name]
        return PredictionResult(labels=read_tiff(path), path=path)

    def describe(self) -> dict[str, Any]:
        """Where the predictions came from."""
        return {"kind": "predictions folder", "path": str(self.folder)}
