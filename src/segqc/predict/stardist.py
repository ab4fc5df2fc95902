"""Predict QC images with a StarDist2D/3D model folder, the way ZeroCostDL4Mic's QC does.

Percentile normalisation (1, 99.8) per channel, the model's thresholds.json unless
thresholds.yaml overrides it, automatic ``n_tiles`` for large images. TensorFlow is
imported only when the first image is predicted.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from segqc.data.axes import ImageInputError, fit_to_model, to_channel_last
from segqc.data.pairing import QcPair
from segqc.predict import PredictionResult
from segqc.predict.model_folder import STARDIST_DEFAULT_THRESHOLDS, ModelFolder
from segqc.thresholds.schema import PredictionSettings

__all__ = [
    "DeviceError",
    "ImageInputError",
    "ModelLoadError",
    "PredictionParameters",
    "StarDistPredictor",
    "prepare_input",
    "resolve_parameters",
]

Device = Literal["auto", "cpu", "gpu"]


class DeviceError(RuntimeError):
    """The requested device is not available."""


class ModelLoadError(RuntimeError):
    """The model folder passed inspection but the network could not be built or loaded."""


@dataclass(frozen=True)
class PredictionParameters:
    """StarDist's post-processing thresholds and where each value came from."""

    prob_thresh: float
    nms_thresh: float
    source: str


def resolve_parameters(folder: ModelFolder, settings: PredictionSettings) -> PredictionParameters:
    """Choose prob/nms thresholds: thresholds.yaml, else thresholds.json, else StarDist's.

    Parameters
    ----------
    folder : ModelFolder
        The inspected model folder.
    settings : PredictionSettings
        The ``prediction:`` section of thresholds.yaml (``None`` means "not set").

    Returns
    -------
    PredictionParameters
    """
    model_values = folder.thresholds or STARDIST_DEFAULT_THRESHOLDS
    model_source = (
        "model thresholds.json"
        if folder.thresholds
        else "StarDist defaults (the model folder has no thresholds.json)"
    )
    prob = settings.prob_thresh
    nms = settings.nms_thresh
    sources = {
        "prob": "thresholds.yaml" if prob is not None else model_source,
        "nms": "thresholds.yaml" if nms is not None else model_source,
    }
    source = (
        sources["prob"]
        if sources["prob"] == sources["nms"]
        else f"prob from {sources['prob']}, nms from {sources['nms']}"
    )
    return PredictionParameters(
        prob_thresh=prob if prob is not None else model_values["prob"],
        nms_thresh=nms if nms is not None else model_values["nms"],
        source=source,
    )


def prepare_input(
    image: np.ndarray, *, n_dim: int, n_channel_in: int, axes: str | None = None
) -> np.ndarray:
    """Check an image against the model and normalise it like StarDist training.

    Parameters
    ----------
    image : np.ndarray
        ``(Y, X)`` / ``(Z, Y, X)``, with a channel axis for multi-channel images.
    n_dim, n_channel_in : int
        From the model's config.json.
    axes : str, optional
        The image's axes (letters of ``TZCSYX``, e.g. ``CYX``, ``ZCYX``, ``YXS`` for
        RGB). Without them, ``n_dim`` axes are spatial and one more is a trailing channel
        axis. See :mod:`segqc.data.axes` for the rules (RGBA's alpha is dropped for 3-channel
        models; a singleton channel axis is removed for 1-channel models).

    Returns
    -------
    np.ndarray
        float32, each channel scaled so its 1st/99.8th percentiles map to 0/1
        (``csbdeep.utils.normalize(image, 1, 99.8, axis=spatial_axes)``).

    Raises
    ------
    ImageInputError
        Dimensions or channels do not fit the model, the image has NaN/inf pixels, or it
        is constant (percentile normalisation would divide by zero).
    """
    from csbdeep.utils import normalize  # light: numpy only, no TensorFlow

    canonical = None
    if axes is not None:
        image, canonical = to_channel_last(image, axes=axes)
    image = fit_to_model(image, canonical, n_dim=n_dim, n_channel_in=n_channel_in)
    if not np.issubdtype(image.dtype, np.number) or np.issubdtype(image.dtype, np.complexfloating):
        raise ImageInputError(f"image has dtype {image.dtype}; expected real numbers")
    if np.issubdtype(image.dtype, np.floating) and not np.all(np.isfinite(image)):
        raise ImageInputError("image contains NaN or infinite pixels; fix or mask them first")
    if image.size and np.ptp(image) == 0:
        raise ImageInputError(
            f"image is constant (every pixel is {image.flat[0]}), so it cannot be normalised; "
            "check the export"
        )
    spatial_axes = tuple(range(n_dim))
    return np.asarray(normalize(image, 1, 99.8, axis=spatial_axes), dtype=np.float32)


class StarDistPredictor:
    """Predict with a StarDist2D/3D model folder; TensorFlow loads on the first call.

    Parameters
    ----------
    folder : ModelFolder
        The inspected model folder.
    parameters : PredictionParameters
        prob/nms thresholds to use.
    device : {"auto", "cpu", "gpu"}
        ``auto`` uses a GPU when TensorFlow sees one; ``cpu`` hides GPUs;
        ``gpu`` requires one (:class:`DeviceError` otherwise).
    """

    needs_source_image = True

    def __init__(
        self, folder: ModelFolder, parameters: PredictionParameters, *, device: Device = "auto"
    ) -> None:
        self.folder = folder
        self.parameters = parameters
        self.device = device
        self.device_name: str | None = None
        self._model: Any = None
        self._load_error: str | None = None

    def load(self) -> None:
        """Import TensorFlow, pick the device and load the network (once).

        Raises
        ------
        ModelLoadError
            The network could not be built from config.json or the weights do not fit it;
            raised again, without retrying, on later calls.
        """
        if self._model is not None:
            return
        if self._load_error is not None:
            raise ModelLoadError(self._load_error)
        self.device_name = select_device(self.device)
        from stardist.models import StarDist2D, StarDist3D

        model_class = StarDist2D if self.folder.n_dim == 2 else StarDist3D
        try:
            # StarDist prints which files it loads; segqc reports that itself.
            with contextlib.redirect_stdout(io.StringIO()):
                model = model_class(
                    None, name=self.folder.name, basedir=str(self.folder.path.parent)
                )
                model.load_weights(self.folder.weights.name)
        except Exception as exc:  # Keras/h5py raise many types for a model that does not fit
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self._load_error = (
                f"{self.folder.path}: the model could not be loaded ({reason}); check that "
                "config.json and the weights file come from the same training run"
            )
            raise ModelLoadError(self._load_error) from None
        self._model = model

    def predict(self, pair: QcPair, image: np.ndarray | None) -> PredictionResult:
        """Normalise ``image`` and predict its instance labels."""
        if image is None:
            raise ValueError("StarDistPredictor needs the source image")
        self.load()
        normalised = prepare_input(
            image, n_dim=self.folder.n_dim, n_channel_in=self.folder.n_channel_in
        )
        n_tiles = tuple(int(n) for n in self._model._guess_n_tiles(normalised))
        labels, _ = self._model.predict_instances(
            normalised,
            prob_thresh=self.parameters.prob_thresh,
            nms_thresh=self.parameters.nms_thresh,
            n_tiles=n_tiles if any(n > 1 for n in n_tiles) else None,
            show_tile_progress=False,
            verbose=False,
        )
        return PredictionResult(labels=np.asarray(labels), n_tiles=n_tiles)

    def describe(self) -> dict[str, Any]:
        """Model, weights, thresholds and device (and a 3D model's anisotropy)."""
        described = {
            "kind": f"StarDist{self.folder.n_dim}D model",
            "path": str(self.folder.path),
            "weights": str(self.folder.weights),
            "prob_thresh": self.parameters.prob_thresh,
            "nms_thresh": self.parameters.nms_thresh,
            "thresholds_source": self.parameters.source,
            "device": self.device_name,
        }
        if self.folder.n_dim == 3:
            # StarDist3D builds its rays from this; segqc loads the config as saved.
            described["anisotropy"] = self.folder.config.get("anisotropy")
        return described


def select_device(device: Device) -> str:
    """Import TensorFlow, apply the device choice and describe the device used.

    Raises
    ------
    DeviceError
        ``device="gpu"`` but TensorFlow sees no GPU.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's start-up chatter
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        raise DeviceError(
            "--device gpu: TensorFlow sees no GPU (check the CUDA install, "
            "`pip install 'segqc[gpu]'`, or use --device auto/cpu)"
        )
    if device == "cpu" or not gpus:
        if gpus:
            tf.config.set_visible_devices([], "GPU")
        return "CPU"
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"GPU ({details.get('device_name', gpus[0].name)})"
