"""Cache predicted label images, so a second QC run of the same model does not predict.

An entry is keyed by everything that shapes a prediction: the weights file's SHA-256
(and config.json's), the source image's content, the prediction parameters
(prob/nms thresholds, the ``n_tiles`` policy, the block-wise policy for large images,
the normalisation) and the versions of
stardist, csbdeep, TensorFlow and segqc. Change any of them and the image is predicted
again. Entries are TIFFs written atomically; one that cannot be read, is truncated, has
the wrong shape, another key or labels that do not hash to what was stored is ignored
and rewritten — a cache entry is never trusted on its name alone.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from segqc import __version__
from segqc.data.pairing import QcPair
from segqc.data.writing import OutputError, atomic_write_bytes
from segqc.predict import PredictionResult, Predictor
from segqc.predict.model_folder import sha256_of
from segqc.predict.stardist import StarDistPredictor

__all__ = [
    "CACHE_FORMAT",
    "CachingPredictor",
    "PredictionCache",
    "array_sha256",
    "cache_key",
    "stardist_cache_settings",
]

CACHE_FORMAT = 1

# How StarDistPredictor predicts; part of the key so changing the policy re-predicts.
N_TILES_POLICY = "auto: stardist _guess_n_tiles, untiled when it gives all ones"
# With the thresholds.yaml block settings (BlockPolicy.record): changing either re-predicts,
# small images included (the key does not depend on the image's size).
BLOCKS_METHOD = (
    "stardist predict_instances_big when an axis > block_above; context = receptive field, "
    "min_overlap default max(128, context), rounded up to div_by; n_tiles per block"
)
NORMALISATION = "csbdeep.utils.normalize(img, 1, 99.8, per channel), float32"


def _installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def array_sha256(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and values (not of the file that held it)."""
    contiguous = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{contiguous.dtype.str}{contiguous.shape}".encode())
    digest.update(contiguous.data.cast("B"))
    return digest.hexdigest()


def cache_key(settings: Mapping[str, Any], image_sha256: str) -> str:
    """The cache key: SHA-256 of the prediction settings and the image content hash.

    Parameters
    ----------
    settings : mapping
        JSON-serialisable description of everything but the image that shapes the
        prediction (see :func:`stardist_cache_settings`).
    image_sha256 : str
        :func:`array_sha256` of the source image.

    Returns
    -------
    str
        64 hexadecimal digits.
    """
    document = json.dumps(
        {"format": CACHE_FORMAT, "settings": settings, "image": image_sha256}, sort_keys=True
    )
    return hashlib.sha256(document.encode()).hexdigest()


def stardist_cache_settings(predictor: StarDistPredictor) -> dict[str, Any]:
    """Everything but the image that determines a :class:`StarDistPredictor`'s output."""
    folder = predictor.folder
    return {
        "weights_sha256": sha256_of(folder.weights),
        "config_sha256": sha256_of(folder.path / "config.json"),
        "prob_thresh": predictor.parameters.prob_thresh,
        "nms_thresh": predictor.parameters.nms_thresh,
        "n_tiles": N_TILES_POLICY,
        "blocks": {**predictor.parameters.blocks.record(), "method": BLOCKS_METHOD},
        "normalisation": NORMALISATION,
        "versions": {
            "segqc": __version__,
            "stardist": _installed("stardist"),
            "csbdeep": _installed("csbdeep"),
            "tensorflow": _installed("tensorflow") or _installed("tensorflow-cpu"),
        },
    }


class PredictionCache:
    """A folder of cached predictions, ``<folder>/<key[:2]>/<key>.tif``.

    Parameters
    ----------
    folder : Path
        Created on the first write.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @staticmethod
    def check_writable(folder: Path) -> None:
        """Create ``folder`` if needed and make sure entries can be written in it.

        Raises
        ------
        OutputError
            The folder cannot be created or written to.
        """
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            raise OutputError(
                f"{folder}: cache folder is not writable ({exc.strerror or exc}); "
                "choose another with --qc-cache, or pass --no-cache"
            ) from None

    def path(self, key: str) -> Path:
        """Where the entry of ``key`` lives."""
        return self.folder / key[:2] / f"{key}.tif"

    def load(self, key: str, *, shape: tuple[int, ...]) -> PredictionResult | None:
        """The cached prediction of ``key``, or None when absent or not to be trusted.

        Parameters
        ----------
        key : str
            From :func:`cache_key`.
        shape : tuple of int
            The shape the labels must have (the source image's spatial shape).
        """
        import tifffile

        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with tifffile.TiffFile(path) as tif:
                header = json.loads(tif.pages.first.description)
                labels = tif.asarray()
        except Exception:  # any damage (truncated, not a TIFF, bad JSON): re-predict
            return None
        if (
            not isinstance(header, dict)
            or header.get("segqc_cache") != CACHE_FORMAT
            or header.get("key") != key
            or labels.shape != tuple(shape)
            or header.get("labels_sha256") != array_sha256(labels)
        ):
            return None
        n_tiles = header.get("n_tiles")
        blocks = header.get("blocks")
        return PredictionResult(
            labels=labels,
            n_tiles=tuple(int(n) for n in n_tiles) if n_tiles is not None else None,
            cached=True,
            blocks=blocks if isinstance(blocks, dict) else None,
        )

    def store(self, key: str, result: PredictionResult) -> Path:
        """Write ``result`` under ``key`` atomically (uint16 if the labels fit, else uint32).

        Raises
        ------
        OutputError
            The entry could not be written.
        """
        import tifffile

        labels = result.labels
        fits_16 = labels.size == 0 or labels.max() <= np.iinfo(np.uint16).max
        labels = labels.astype(np.uint16 if fits_16 else np.uint32, copy=False)
        header = {
            "segqc_cache": CACHE_FORMAT,
            "key": key,
            "n_tiles": list(result.n_tiles) if result.n_tiles is not None else None,
            "blocks": dict(result.blocks) if result.blocks is not None else None,
            "labels_sha256": array_sha256(labels),
        }
        buffer = io.BytesIO()
        tifffile.imwrite(
            buffer, labels, compression="zlib", description=json.dumps(header), metadata=None
        )
        return atomic_write_bytes(self.path(key), buffer.getvalue())


class CachingPredictor:
    """A :class:`~segqc.predict.stardist.Predictor` that looks in a :class:`PredictionCache` first.

    Parameters
    ----------
    inner : Predictor
        Predicts on a cache miss; must need the source image (the key hashes it).
    cache : PredictionCache
        Where entries are read and written.
    settings : mapping
        The key's prediction settings (e.g. :func:`stardist_cache_settings`).
    n_dim : int
        Spatial dimensions: a cached prediction must have the image's first ``n_dim``
        axes as its shape.
    """

    needs_source_image = True

    def __init__(
        self, inner: Predictor, cache: PredictionCache, *, settings: Mapping[str, Any], n_dim: int
    ) -> None:
        self.inner = inner
        self.cache = cache
        self.settings = dict(settings)
        self.n_dim = n_dim
        self.hits = 0
        self.misses = 0
        self.write_errors: list[str] = []

    def predict(self, pair: QcPair, image: np.ndarray | None) -> PredictionResult:
        """Return the cached prediction of ``image``, else predict and store it."""
        if image is None:
            raise ValueError("CachingPredictor needs the source image")
        key = cache_key(self.settings, array_sha256(image))
        cached = self.cache.load(key, shape=image.shape[: self.n_dim])
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        result = self.inner.predict(pair, image)
        try:
            self.cache.store(key, result)
        except OutputError as exc:  # a cache is an optimisation: never fail QC over it
            self.write_errors.append(str(exc))
        return result

    def describe(self) -> dict[str, Any]:
        """The inner predictor's description, plus the cache folder."""
        return {**self.inner.describe(), "cache": str(self.cache.folder)}

    def __getattr__(self, name: str) -> Any:
        # folder, parameters, device_name...: whatever the wrapped predictor offers
        return getattr(self.inner, name)
