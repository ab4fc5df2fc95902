"""Predict QC images with a StarDist2D/3D model folder, the way ZeroCostDL4Mic's QC does.

Percentile normalisation (1, 99.8) per channel, the model's thresholds.json unless
thresholds.yaml overrides it, automatic ``n_tiles`` for large images. TensorFlow is
imported only when the first image is predicted.

Large images are predicted block-wise
-------------------------------------
``predict_instances`` with ``n_tiles`` bounds only the network's memory: the probability
map, the candidate polygons (``n_rays`` distances for each grid cell above
``prob_thresh``), the NMS and the label image still cover the whole image at once. With
the demo model (32 rays, 2x2 grid) on DSB nuclei covering 15% of the image, that is
about 17 bytes per pixel beyond the input (1.1 GB at 8192², bench/bench_blocks.py), more
where objects cover more of the image. An image with a spatial axis longer than
``prediction.block_above`` pixels (thresholds.yaml, default 4096; 0 or null: never) is
therefore predicted with StarDist's ``predict_instances_big``: blocks of
``prediction.block_size`` pixels per side (default 2048, or ``block_above`` if smaller;
rounded up to a multiple of the model's ``div_by``: grid x pool ** depth for a U-Net, 8
for the demo model),
each predicted with ``predict_instances`` and its own ``n_tiles``, then stitched the way
StarDist documents it:

* ``context``: the pixels discarded around each block, the model's receptive field
  (``_axes_tile_overlap``, what StarDist itself uses when ``context=None``), rounded up
  the same way, so a kept pixel saw the same input as in a one-piece prediction;
* ``min_overlap``: how much the blocks' kept regions overlap; every object must be smaller
  (StarDist's assumption). Default: the larger of 128 (StarDist's documented example)
  and the context (StarDist's training notebook warns when objects are larger than it,
  so the network could not segment them anyway); ``prediction.block_min_overlap`` sets
  it. An object that breaks it fails that image with a message saying what to raise.

Axes no longer than ``block_size`` are one block (no context or overlap along them). 3D
volumes follow the same rules per axis (Z included), as ``StarDist3D.predict_instances_big``
supports. What still grows with the image is the normalised float32 copy (4 bytes per
pixel, plus a transient float64 copy while its percentiles are computed) and the int32
label image (4 bytes per pixel); the rest is one block's working set. Measured: about 11
bytes per pixel beyond the input (0.77 GB at 8192²). Below ``block_above`` blocks would
save nothing worth their cost: at 4096² one piece needs 0.32 GB beyond the input, and
blocks repeat the overlaps' pixels (2048-pixel blocks predict about 1.27-2.25 times the
pixels).
The layout of each block-wise image is
:attr:`PredictionResult.blocks <segqc.predict.PredictionResult>` (summary.json
``images[].blocks``).
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
    "MIN_OVERLAP_FLOOR",
    "BlockPlan",
    "BlockPolicy",
    "BlockSettingsError",
    "DeviceError",
    "ImageInputError",
    "ModelLoadError",
    "PredictionParameters",
    "StarDistPredictor",
    "oversized_axes",
    "plan_blocks",
    "prepare_input",
    "resolve_parameters",
]

Device = Literal["auto", "cpu", "gpu"]


class DeviceError(RuntimeError):
    """The requested device is not available."""


class ModelLoadError(RuntimeError):
    """The model folder passed inspection but the network could not be built or loaded."""


#: The smallest ``min_overlap`` segqc chooses itself, in pixels: the value of StarDist's
#: documented ``predict_instances_big`` example.
MIN_OVERLAP_FLOOR = 128
#: The block size when thresholds.yaml gives none (``block_above`` if that is smaller).
DEFAULT_BLOCK_SIZE = 2048


class BlockSettingsError(ImageInputError):
    """Block-wise prediction cannot work on this image with these settings and model."""


@dataclass(frozen=True)
class BlockPolicy:
    """When and how large images are predicted block-wise (see the module docstring).

    Parameters
    ----------
    above : int or None
        Predict block-wise when a spatial axis is longer than this (pixels); None: never.
    size : int
        Block size per axis, in pixels (rounded up to the model's ``div_by``).
    min_overlap : int or None
        Guaranteed overlap of neighbouring blocks; None: ``max(128, context)``.
    """

    above: int | None = 4096
    size: int = DEFAULT_BLOCK_SIZE
    min_overlap: int | None = None

    @classmethod
    def from_settings(cls, settings: PredictionSettings) -> BlockPolicy:
        """The policy of thresholds.yaml's ``prediction:`` section."""
        above = settings.block_above or None
        size = settings.block_size
        if size is None:
            size = min(DEFAULT_BLOCK_SIZE, above) if above else DEFAULT_BLOCK_SIZE
        return cls(above=above, size=size, min_overlap=settings.block_min_overlap)

    def record(self) -> dict[str, Any]:
        """The policy under thresholds.yaml's names, for summary.json and the cache key."""
        return {
            "block_above": self.above,
            "block_size": self.size,
            "block_min_overlap": (
                self.min_overlap
                if self.min_overlap is not None
                else f"max({MIN_OVERLAP_FLOOR}, model receptive field)"
            ),
        }


@dataclass(frozen=True)
class PredictionParameters:
    """StarDist's post-processing thresholds and where each value came from.

    ``blocks`` says when an image is predicted block-wise (thresholds.yaml's defaults
    unless given).
    """

    prob_thresh: float
    nms_thresh: float
    source: str
    blocks: BlockPolicy = BlockPolicy()


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
        blocks=BlockPolicy.from_settings(settings),
    )


def _round_up(value: int, div_by: int) -> int:
    # What StarDist's predict_instances_big does to block_size, min_overlap and context.
    return -(-int(value) // div_by) * div_by


@dataclass(frozen=True)
class BlockPlan:
    """The block layout of one image (per spatial axis, in pixels, multiples of ``div_by``).

    An axis with one block has ``min_overlap`` and ``context`` 0 and ``block_size`` equal
    to its length rounded up to ``div_by`` (``padded_shape``: the image is padded by
    reflection at its end to that length and the labels cropped back).
    """

    axes: str
    shape: tuple[int, ...]
    padded_shape: tuple[int, ...]
    block_size: tuple[int, ...]
    min_overlap: tuple[int, ...]
    context: tuple[int, ...]
    blocks_per_axis: tuple[int, ...]
    reason: str

    @property
    def n_blocks(self) -> int:
        """How many blocks are predicted."""
        return int(np.prod(self.blocks_per_axis))

    def record(self, n_tiles: tuple[int, ...] | None = None) -> dict[str, Any]:
        """JSON-ready layout for :attr:`PredictionResult.blocks`."""
        return {
            "method": "stardist predict_instances_big",
            "reason": self.reason,
            "axes": self.axes,
            "block_size": list(self.block_size),
            "min_overlap": list(self.min_overlap),
            "context": list(self.context),
            "blocks_per_axis": list(self.blocks_per_axis),
            "n_blocks": self.n_blocks,
            "n_tiles_per_block": list(n_tiles) if n_tiles is not None else None,
        }


def oversized_axes(shape: tuple[int, ...], axes: str, policy: BlockPolicy) -> str | None:
    """Why ``shape`` is predicted block-wise under ``policy``, or None if it is not.

    Parameters
    ----------
    shape : tuple of int
        Spatial shape, one length per letter of ``axes``.
    axes : str
        ``"YX"`` or ``"ZYX"``.
    policy : BlockPolicy
    """
    if not policy.above:
        return None
    longer = [
        f"{axis} ({size})" for axis, size in zip(axes, shape, strict=True) if size > policy.above
    ]
    if not longer:
        return None
    verb = "is" if len(longer) == 1 else "are"
    return (
        f"{' and '.join(longer)} {verb} longer than prediction.block_above ({policy.above} pixels)"
    )


def plan_blocks(
    shape: tuple[int, ...],
    *,
    axes: str,
    div_by: tuple[int, ...],
    context: tuple[int, ...],
    policy: BlockPolicy,
) -> BlockPlan | None:
    """The blocks StarDist's ``predict_instances_big`` will use, or None for one piece.

    Parameters
    ----------
    shape : tuple of int
        The image's spatial shape.
    axes : str
        Its spatial axes, ``"YX"`` or ``"ZYX"``.
    div_by : tuple of int
        What block sizes must be multiples of (``model._axes_div_by(axes)``: grid x
        pool ** depth for a U-Net, the grid for a ResNet), as predict_instances_big
        rounds them.
    context : tuple of int
        The model's receptive field per axis (``model._axes_tile_overlap(axes)``).
    policy : BlockPolicy

    Returns
    -------
    BlockPlan or None
        None when no axis is longer than ``policy.above``, or every axis fits one block.

    Raises
    ------
    BlockSettingsError
        ``block_size`` leaves no room for ``min_overlap`` plus the context on both sides.
    """
    reason = oversized_axes(shape, axes, policy)
    if reason is None:
        return None
    from stardist.big import Block  # no TensorFlow: StarDist's own block cover

    padded, sizes, overlaps, contexts, counts = [], [], [], [], []
    for axis, length, g, receptive in zip(axes, shape, div_by, context, strict=True):
        block = _round_up(policy.size, g)
        if length <= block:
            padded.append(_round_up(length, g))
            sizes.append(padded[-1])
            overlaps.append(0)
            contexts.append(0)
            counts.append(1)
            continue
        margin = _round_up(receptive, g)
        overlap = _round_up(
            policy.min_overlap
            if policy.min_overlap is not None
            else max(MIN_OVERLAP_FLOOR, receptive),
            g,
        )
        if overlap + 2 * margin >= block:
            raise BlockSettingsError(
                f"prediction.block_size ({policy.size}) is too small for this model along "
                f"{axis}: a block needs more than min_overlap + 2 x context = {overlap} + "
                f"2 x {margin} pixels; raise block_size in thresholds.yaml"
                + (" (or lower block_min_overlap)" if policy.min_overlap is not None else "")
            )
        padded.append(length)
        sizes.append(block)
        overlaps.append(overlap)
        contexts.append(margin)
        counts.append(len(Block.cover(length, block, overlap, margin, g, verbose=False)))
    if all(count == 1 for count in counts):
        return None
    return BlockPlan(
        axes=axes,
        shape=tuple(int(n) for n in shape),
        padded_shape=tuple(padded),
        block_size=tuple(sizes),
        min_overlap=tuple(overlaps),
        context=tuple(contexts),
        blocks_per_axis=tuple(counts),
        reason=reason,
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
        Dimensions or channels do not fit the model, the image has NaN/inf pixels, it
        is constant (percentile normalisation would divide by zero), or its values
        overflow float32 (or collapse to one value) once normalised.
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
    with np.errstate(over="ignore"):  # a range beyond float32's is reported below
        constant = bool(image.size) and np.ptp(image) == 0
    if constant:
        raise ImageInputError(
            f"image is constant (every pixel is {image.flat[0]}), so it cannot be normalised; "
            "check the export"
        )
    spatial_axes = tuple(range(n_dim))
    with np.errstate(over="ignore", invalid="ignore"):  # reported below, in one line
        normalised = np.asarray(normalize(image, 1, 99.8, axis=spatial_axes), dtype=np.float32)
    _check_normalised(image, normalised)
    return normalised


def _check_normalised(image: np.ndarray, normalised: np.ndarray) -> None:
    """Refuse an image whose values do not survive normalisation in float32.

    StarDist normalises in float32: values beyond its range (about 3.4e38, e.g. a float64
    export) become inf and NaN, and a range narrower than float32 resolves (e.g. values
    around 1e-50) becomes one value. Either way the model would see no image and predict
    nothing, which would read as a bad model.
    """
    if normalised.size == 0:
        return
    if not np.all(np.isfinite(normalised)):
        problem = "overflow float32 when normalised for the model"
    elif np.ptp(normalised) == 0:
        problem = "are all the same once normalised in float32"
    else:
        return
    raise ImageInputError(
        f"image values (from {image.min():.4g} to {image.max():.4g}, dtype {image.dtype}) "
        f"{problem}; rescale the image (e.g. save it as float32 or uint16)"
    )


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
    placement : {"cpu", "gpu"}, optional
        Predict on this device, within the devices ``device`` leaves visible, without
        changing which devices TensorFlow sees: the second predictor of
        ``--compare-device`` shares its process with the first.
    """

    needs_source_image = True

    def __init__(
        self,
        folder: ModelFolder,
        parameters: PredictionParameters,
        *,
        device: Device = "auto",
        placement: Literal["cpu", "gpu"] | None = None,
    ) -> None:
        self.folder = folder
        self.parameters = parameters
        self.device = device
        self.placement = placement
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
        # A second predictor applies the same choice as the first: TensorFlow accepts
        # the same visible devices again once it is initialised, only a change fails.
        self.device_name = select_device(self.device)
        if self.placement is not None:
            self.device_name = placed_device(self.placement)
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
        if self.placement is None:
            return self._predict(image)
        with _tensorflow().device("/GPU:0" if self.placement == "gpu" else "/CPU:0"):
            return self._predict(image)

    def _predict(self, image: np.ndarray) -> PredictionResult:
        normalised = prepare_input(
            image, n_dim=self.folder.n_dim, n_channel_in=self.folder.n_channel_in
        )
        plan = self._block_plan(normalised)
        if plan is not None:
            return self._predict_blocks(normalised, plan)
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

    def _block_plan(self, normalised: np.ndarray) -> BlockPlan | None:
        """The block layout of a normalised image, None to predict it in one piece."""
        n_dim = self.folder.n_dim
        axes = "YX" if n_dim == 2 else "ZYX"
        shape = tuple(int(n) for n in normalised.shape[:n_dim])
        policy = self.parameters.blocks
        if oversized_axes(shape, axes, policy) is None:
            return None  # no receptive field computed for the usual, small image
        context = tuple(int(n) for n in self._model._axes_tile_overlap(axes))
        div_by = tuple(int(g) for g in self._model._axes_div_by(axes))
        return plan_blocks(shape, axes=axes, div_by=div_by, context=context, policy=policy)

    def _predict_blocks(self, normalised: np.ndarray, plan: BlockPlan) -> PredictionResult:
        """Predict block by block with StarDist's ``predict_instances_big`` and stitch."""
        n_dim = self.folder.n_dim
        channels = [normalised.shape[-1]] if normalised.ndim > n_dim else []
        padding = [(0, p - s) for s, p in zip(plan.shape, plan.padded_shape, strict=True)]
        if any(after for _, after in padding):
            # One-block axes must be a multiple of div_by for predict_instances_big.
            normalised = np.pad(normalised, padding + [(0, 0)] * len(channels), mode="reflect")
        block_shape = plan.block_size + tuple(channels)
        n_tiles = tuple(
            int(n) for n in self._model._guess_n_tiles(np.broadcast_to(np.float32(0), block_shape))
        )
        zeros = [0] * len(channels)  # predict_instances_big sets the channel axis itself
        try:
            # predict_instances_big prints the effective layout; segqc records it instead.
            with contextlib.redirect_stdout(io.StringIO()):
                labels, _ = self._model.predict_instances_big(
                    normalised,
                    axes=plan.axes + ("C" if channels else ""),
                    block_size=list(block_shape),
                    min_overlap=list(plan.min_overlap) + zeros,
                    context=list(plan.context) + zeros,
                    labels_out_dtype=np.int32,
                    show_progress=False,
                    prob_thresh=self.parameters.prob_thresh,
                    nms_thresh=self.parameters.nms_thresh,
                    n_tiles=n_tiles if any(n > 1 for n in n_tiles) else None,
                    show_tile_progress=False,
                    verbose=False,
                )
        except RuntimeError as exc:
            if "min_overlap" not in str(exc):
                raise
            # StarDist: "Found object of shape (..), which violates the assumption ..."
            found = str(exc).split(", which")[0].removeprefix("Found ")
            raise BlockSettingsError(
                f"block-wise prediction: {found} crosses a block border and is not smaller "
                f"than the blocks' overlap {tuple(plan.min_overlap)}; set "
                "prediction.block_min_overlap in thresholds.yaml above the largest object's "
                "size (or raise block_above to predict this image in one piece)"
            ) from None
        labels = labels[tuple(slice(0, s) for s in plan.shape)]
        return PredictionResult(
            labels=np.asarray(labels), n_tiles=n_tiles, blocks=plan.record(n_tiles)
        )

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
            "blocks": self.parameters.blocks.record(),
        }
        if self.folder.n_dim == 3:
            # StarDist3D builds its rays from this; segqc loads the config as saved.
            described["anisotropy"] = self.folder.config.get("anisotropy")
        return described


def placed_device(placement: Literal["cpu", "gpu"]) -> str:
    """Describe the device predictions are placed on, without changing what TensorFlow sees.

    Raises
    ------
    DeviceError
        ``placement="gpu"`` but TensorFlow sees no GPU.
    """
    if placement == "cpu":
        return "CPU"
    gpus = _tensorflow().config.list_physical_devices("GPU")
    if not gpus:
        raise DeviceError(
            "--compare-device gpu: TensorFlow sees no GPU (check the CUDA install and "
            "`pip install 'segqc[gpu]'`, or compare with --compare-device cpu)"
        )
    return _gpu_name(gpus[0])


def select_device(device: Device) -> str:
    """Import TensorFlow, apply the device choice and describe the device used.

    Raises
    ------
    DeviceError
        ``device="gpu"`` but TensorFlow sees no GPU.
    """
    tf = _tensorflow()
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
    return _gpu_name(gpus[0])


def _gpu_name(gpu: Any) -> str:
    """``GPU (<name>)`` of one of TensorFlow's physical GPU devices."""
    details = _tensorflow().config.experimental.get_device_details(gpu)
    return f"GPU ({details.get('device_name', gpu.name)})"


def _tensorflow() -> Any:
    """TensorFlow, imported without its start-up chatter."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf
