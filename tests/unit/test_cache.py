"""The prediction cache, with a fake predictor that counts its calls (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from segqc.data.pairing import QcPair
from segqc.data.writing import OutputError
from segqc.predict import PredictionResult
from segqc.predict.cache import CachingPredictor, PredictionCache, array_sha256, cache_key

SETTINGS = {
    "weights_sha256": "a" * 64,
    "config_sha256": "b" * 64,
    "prob_thresh": 0.5,
    "nms_thresh": 0.4,
    "n_tiles": "auto",
    "normalisation": "percentile 1 99.8",
    "versions": {"segqc": "0.1.0", "stardist": "0.9.2", "csbdeep": "0.8.1"},
}
PAIR = QcPair("img.tif", Path("source/img.tif"), Path("target/img.tif"))


class CountingPredictor:
    """Labels = image > 100, numbered 1 (a fake model); counts predict() calls."""

    needs_source_image = True

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, pair: QcPair, image: np.ndarray | None) -> PredictionResult:
        assert image is not None
        self.calls += 1
        return PredictionResult(labels=(image > 100).astype(np.int32), n_tiles=(1, 2))

    def describe(self) -> dict:
        return {"kind": "fake"}


def image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 200, size=(16, 24), dtype=np.uint16)


def caching(folder: Path, inner: CountingPredictor, **changes: object) -> CachingPredictor:
    return CachingPredictor(
        inner, PredictionCache(folder), settings={**SETTINGS, **changes}, n_dim=2
    )


def test_second_prediction_of_the_same_image_is_a_hit(tmp_path):
    inner = CountingPredictor()
    first = caching(tmp_path, inner).predict(PAIR, image())
    again = caching(tmp_path, inner).predict(PAIR, image())  # a new session, same folder
    assert inner.calls == 1
    assert (first.cached, again.cached) == (False, True)
    np.testing.assert_array_equal(again.labels, image() > 100)
    assert again.n_tiles == (1, 2)


@pytest.mark.parametrize(
    "change",
    [
        {"weights_sha256": "c" * 64},
        {"config_sha256": "d" * 64},
        {"prob_thresh": 0.6},
        {"nms_thresh": 0.3},
        {"n_tiles": "never"},
        {"normalisation": "none"},
        {"versions": {**SETTINGS["versions"], "stardist": "0.9.3"}},
        {"versions": {**SETTINGS["versions"], "csbdeep": "0.8.2"}},
        {"versions": {**SETTINGS["versions"], "segqc": "0.2.0"}},
    ],
    ids=lambda change: next(iter(change)),
)
def test_any_key_change_predicts_again(tmp_path, change):
    inner = CountingPredictor()
    caching(tmp_path, inner).predict(PAIR, image())
    result = caching(tmp_path, inner, **change).predict(PAIR, image())
    assert inner.calls == 2 and not result.cached


@pytest.mark.parametrize(
    "other",
    [image(seed=1), image().astype(np.int32), image().reshape(24, 16)],
    ids=["pixels", "dtype", "shape"],
)
def test_a_different_image_predicts_again(tmp_path, other):
    inner = CountingPredictor()
    caching(tmp_path, inner).predict(PAIR, image())
    assert not caching(tmp_path, inner).predict(PAIR, other).cached
    assert inner.calls == 2


def test_image_hash_covers_dtype_shape_and_values():
    a = np.arange(6, dtype=np.uint8).reshape(2, 3)
    hashes = {
        array_sha256(a),
        array_sha256(a.reshape(3, 2)),
        array_sha256(a.astype(np.uint16)),
        array_sha256(a + 1),
    }
    assert len(hashes) == 4
    assert array_sha256(a) == array_sha256(np.asfortranarray(a).copy(order="F"))


def _entry(folder: Path) -> Path:
    return PredictionCache(folder).path(cache_key(SETTINGS, array_sha256(image())))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _not_a_tiff(path: Path) -> None:
    path.write_bytes(b"not a tiff at all")


def _wrong_shape(path: Path) -> None:
    description = tifffile.TiffFile(path).pages.first.description
    tifffile.imwrite(path, np.ones((8, 8), np.uint16), description=description, metadata=None)


def _tampered_labels(path: Path) -> None:
    with tifffile.TiffFile(path) as tif:
        description, labels = tif.pages.first.description, tif.asarray()
    labels[0, 0] += 7
    tifffile.imwrite(path, labels, description=description, metadata=None)


def _no_header(path: Path) -> None:
    tifffile.imwrite(path, (image() > 100).astype(np.uint16))


@pytest.mark.parametrize(
    "damage", [_truncate, _not_a_tiff, _wrong_shape, _tampered_labels, _no_header]
)
def test_a_corrupt_entry_is_ignored_and_rewritten(tmp_path, damage):
    inner = CountingPredictor()
    caching(tmp_path, inner).predict(PAIR, image())
    entry = _entry(tmp_path)
    assert entry.is_file()
    damage(entry)
    result = caching(tmp_path, inner).predict(PAIR, image())
    assert inner.calls == 2 and not result.cached
    np.testing.assert_array_equal(result.labels, image() > 100)
    again = caching(tmp_path, inner).predict(PAIR, image())  # rewritten, so a hit now
    assert inner.calls == 2 and again.cached


def test_unwritable_cache_still_predicts(tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    inner = CountingPredictor()
    predictor = caching(blocker, inner)
    result = predictor.predict(PAIR, image())
    assert inner.calls == 1 and not result.cached
    assert predictor.write_errors and "cannot write" in predictor.write_errors[0]


def test_large_label_ids_survive_the_cache(tmp_path):
    class BigIds(CountingPredictor):
        def predict(self, pair, image):
            self.calls += 1
            labels = np.zeros(image.shape, np.int64)
            labels[0, :3] = [70_000, 1, 2**31 - 1]
            return PredictionResult(labels=labels)

    inner = BigIds()
    caching(tmp_path, inner).predict(PAIR, image())
    result = caching(tmp_path, inner).predict(PAIR, image())
    assert result.cached and result.n_tiles is None
    assert result.labels[0, :3].tolist() == [70_000, 1, 2**31 - 1]


def test_an_unwritable_cache_folder_is_refused_naming_the_fix(tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(OutputError, match=r"cache: cache folder is not writable .*--no-cache"):
        PredictionCache.check_writable(blocker)
    PredictionCache.check_writable(tmp_path / "new" / "cache")  # created when missing
    assert (tmp_path / "new" / "cache").is_dir()
