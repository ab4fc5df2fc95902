"""Seeded inputs of the benchmark, written by a child process of ``bench/run.py``.

    python bench/inputs.py model-qc ROOT N
    python bench/inputs.py pool ROOT N SIDE OBJECTS DISTINCT
    python bench/inputs.py slide ROOT SIDE

The bench runs this file in a subprocess rather than importing it: Linux hands a
child process the peak memory of its parent at ``exec`` (``ru_maxrss``), so the bench's
own process must stay small for the peak memory of the pytest runs it measures to be
theirs alone.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi


def qc_labels(shape: tuple[int, int], n: int, seed: int) -> np.ndarray:
    """Round nuclei at seeded random places.

    Parameters
    ----------
    shape : tuple of int
        The image's shape.
    n : int
        The number of nucleus centres (nearest-centre cells cut to radius 7).
    seed : int
        The random seed.

    Returns
    -------
    numpy.ndarray
        An int32 label image, objects numbered 1 … n (some may be missing).
    """
    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, np.int32)
    centres = rng.integers(0, shape, size=(n, 2))
    seeds[centres[:, 0], centres[:, 1]] = np.arange(1, n + 1)
    distance, (iy, ix) = ndi.distance_transform_edt(seeds == 0, return_indices=True)
    labels = seeds[iy, ix]
    labels[distance > 7] = 0
    return labels


def qc_pair(shape: tuple[int, int], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A noisy uint16 image and its label mask.

    Parameters
    ----------
    shape : tuple of int
        The image's shape.
    n : int
        The number of nuclei (see :func:`qc_labels`).
    seed : int
        The random seed.

    Returns
    -------
    tuple of numpy.ndarray
        The uint16 image and its uint16 labels.
    """
    labels = qc_labels(shape, n, seed)
    rng = np.random.default_rng(seed + 10_000)
    image = 100 + 300 * ndi.gaussian_filter((labels > 0).astype(float), 1.5)
    image = image + rng.normal(0, 15, shape)
    return np.clip(image, 0, 65535).astype(np.uint16), labels.astype(np.uint16)


def predicted(labels: np.ndarray) -> np.ndarray:
    """A plausible prediction: the labels shifted by a pixel, every 20th object lost.

    Parameters
    ----------
    labels : numpy.ndarray
        Ground-truth labels.

    Returns
    -------
    numpy.ndarray
        The prediction, of the labels' dtype (the shift wraps within the image).
    """
    prediction = np.roll(labels, 1, axis=1)
    prediction[np.isin(prediction, np.arange(1, int(labels.max()) + 1, 20))] = 0
    return prediction


def write_qc(root: Path, n_images: int, shape: tuple[int, int], n_objects: int) -> Path:
    """Write source/, target/ and predictions/ of ``n_images`` seeded pairs under ``root``.

    Parameters
    ----------
    root : Path
        The QC folder to fill.
    n_images : int
        The number of images (seeds 0 … n_images - 1).
    shape : tuple of int
        Each image's shape.
    n_objects : int
        Nuclei per image.

    Returns
    -------
    Path
        ``root``.
    """
    for sub in ("source", "target", "predictions"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        image, labels = qc_pair(shape, n_objects, seed=i)
        tifffile.imwrite(root / "source" / f"qc{i:05d}.tif", image)
        tifffile.imwrite(root / "target" / f"qc{i:05d}.tif", labels, compression="zlib")
        tifffile.imwrite(
            root / "predictions" / f"qc{i:05d}.tif", predicted(labels), compression="zlib"
        )
    return root


def predictions_pool(root: Path, n_images: int, side: int, objects: int, distinct: int) -> Path:
    """--predictions QC folders (target/, predictions/) of ``n_images`` seeded pairs.

    Only ``distinct`` pairs are generated (once per side and object count); the others
    are hard links to them under new names, which keeps set-up time and disk use small
    (a run reads every file all the same: there is no cache in --predictions mode).

    Parameters
    ----------
    root : Path
        The bench's work folder.
    n_images : int
        The number of pairs.
    side : int
        Each image is side x side pixels.
    objects : int
        Nuclei per image.
    distinct : int
        The number of distinct pairs.

    Returns
    -------
    Path
        The QC folder, ``root/qc_<side>_<n_images>``.
    """
    pool = root / f"pool_{side}_{objects}"
    if not pool.exists():
        for sub in ("target", "predictions"):
            (pool / sub).mkdir(parents=True)
        for i in range(distinct):
            labels = qc_labels((side, side), objects, seed=1000 + i).astype(np.uint16)
            tifffile.imwrite(pool / "target" / f"{i}.tif", labels, compression="zlib")
            tifffile.imwrite(
                pool / "predictions" / f"{i}.tif", predicted(labels), compression="zlib"
            )
    folder = root / f"qc_{side}_{n_images}"
    if folder.exists():
        return folder
    for sub in ("target", "predictions"):
        (folder / sub).mkdir(parents=True)
        for i in range(n_images):
            os.link(pool / sub / f"{i % distinct}.tif", folder / sub / f"qc{i:05d}.tif")
    return folder


def whole_slide(root: Path, side: int, tile: int = 1024) -> dict[str, int]:
    """One side x side uint32 pair, and its four quadrants as four pairs.

    The slide is made of ``tile`` x ``tile`` tiles of :func:`qc_labels` (1,500 nuclei
    each, its own seed) whose labels are offset to stay distinct. No object crosses a
    tile's edge (the prediction's one-pixel shift wraps within its tile), so the
    quadrants' counts must add up to the slide's. Written as tiled zlib TIFFs to
    ``root/slide/{target,predictions}/slide.tif`` and
    ``root/quadrants/{target,predictions}/q<k>.tif``.

    Parameters
    ----------
    root : Path
        The folder to write to.
    side : int
        The slide's side in pixels, a multiple of 2 * ``tile``.
    tile : int
        The side of one generated tile.

    Returns
    -------
    dict
        ``label_bytes``: the bytes of the two label images in memory.
    """
    n = side // tile
    truth = np.zeros((side, side), np.uint32)
    prediction = np.zeros((side, side), np.uint32)
    offset = 0
    for i in range(n):
        for j in range(n):
            labels = qc_labels((tile, tile), 1500, seed=7000 + i * n + j).astype(np.uint32)
            window = np.s_[i * tile : (i + 1) * tile, j * tile : (j + 1) * tile]
            truth[window] = np.where(labels > 0, labels + offset, 0)
            shifted = predicted(labels)
            prediction[window] = np.where(shifted > 0, shifted + offset, 0)
            offset += int(labels.max()) + 1
    half = side // 2
    quadrants = [np.s_[y : y + half, x : x + half] for y in (0, half) for x in (0, half)]
    for kind, array in (("target", truth), ("predictions", prediction)):
        for folder in ("slide", "quadrants"):
            (root / folder / kind).mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(
            root / "slide" / kind / "slide.tif", array, compression="zlib", tile=(512, 512)
        )
        for k, window in enumerate(quadrants):
            tifffile.imwrite(
                root / "quadrants" / kind / f"q{k}.tif", array[window], compression="zlib",
                tile=(512, 512),
            )  # fmt: skip
    return {"label_bytes": truth.nbytes + prediction.nbytes}


def main() -> None:
    """Write one kind of input (see the module docstring); print a JSON line about it."""
    kind, root, *numbers = sys.argv[1:]
    n = [int(v) for v in numbers]
    if kind == "model-qc":
        folder = write_qc(Path(root), n[0], (384, 384), 200)
        print(json.dumps({"folder": str(folder)}))
    elif kind == "pool":
        folder = predictions_pool(Path(root), *n)
        print(json.dumps({"folder": str(folder)}))
    elif kind == "slide":
        print(json.dumps(whole_slide(Path(root), n[0])))
    else:
        raise SystemExit(f"inputs.py: unknown kind {kind!r} (model-qc, pool or slide)")


if __name__ == "__main__":
    main()
