"""Block-wise prediction of large images: the settings, the layout and the cache key.

No TensorFlow here: the layouts are computed by hand from StarDist's rules (blocks of
``block_size`` pixels overlapping by ``min_overlap + 2 x context``, everything rounded up
to the model's ``div_by``); the predictions themselves are compared with one-piece
predictions in tests/integration/test_block_prediction.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from segqc.predict import PredictionResult
from segqc.predict.cache import PredictionCache, stardist_cache_settings
from segqc.predict.model_folder import inspect_model_folder
from segqc.predict.stardist import (
    BlockPolicy,
    BlockSettingsError,
    StarDistPredictor,
    plan_blocks,
    resolve_parameters,
)
from segqc.thresholds import ThresholdsError, load_thresholds
from segqc.thresholds.schema import PredictionSettings
from tests.helpers import DEMO2D

# The demo model's: a 2x2 grid under a depth-2 U-Net (div_by 8), receptive field 46.
DIV_BY = (8, 8)
CONTEXT = (46, 46)


def test_defaults_block_images_longer_than_4096_in_2048_blocks(thresholds_file):
    prediction = load_thresholds(thresholds_file("matching:\n  iou_threshold: 0.5\n"))
    policy = BlockPolicy.from_settings(prediction.thresholds.prediction)
    assert policy == BlockPolicy(above=4096, size=2048, min_overlap=None)


def test_lowering_block_above_alone_lowers_the_block_size(thresholds_file):
    loaded = load_thresholds(thresholds_file("prediction:\n  block_above: 1024\n"))
    assert BlockPolicy.from_settings(loaded.thresholds.prediction).size == 1024


@pytest.mark.parametrize("never", ["0", "null"])
def test_block_above_zero_or_null_means_never(thresholds_file, never):
    loaded = load_thresholds(thresholds_file(f"prediction:\n  block_above: {never}\n"))
    policy = BlockPolicy.from_settings(loaded.thresholds.prediction)
    assert policy.above is None
    assert plan_blocks((100_000, 100_000), axes="YX", div_by=DIV_BY, context=CONTEXT,
                       policy=policy) is None  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "prediction:\n  block_above: 1024\n  block_size: 2048\n",
            r"prediction: block_size \(2048\) is larger than block_above \(1024\)",
        ),
        (
            "prediction:\n  block_size: 512\n  block_above: 512\n  block_min_overlap: 512\n",
            r"prediction: block_min_overlap \(512\) must be smaller than block_size \(512\)",
        ),
        ("prediction:\n  block_above: -1\n", r"prediction\.block_above: .*greater than or equal"),
        ("prediction:\n  block_size: 1024.5\n", r"prediction\.block_size: "),
        ("prediction:\n  block_size: 8\n", r"prediction\.block_size: .*greater than or equal"),
        ("prediction:\n  block_sise: 1024\n", r"did you mean 'block_size'"),
    ],
)
def test_invalid_block_settings_name_the_key_and_the_fix(thresholds_file, text, message):
    path = thresholds_file(text)
    with pytest.raises(ThresholdsError, match=message) as caught:
        load_thresholds(path)
    assert str(caught.value).startswith(str(path))


def test_small_images_and_images_at_the_limit_are_one_piece():
    policy = BlockPolicy()
    for shape in [(512, 512), (4096, 4096), (4096, 100)]:
        assert plan_blocks(shape, axes="YX", div_by=DIV_BY, context=CONTEXT, policy=policy) is None


def test_layout_of_a_long_strip_by_hand():
    # Y: 5000 > 4096. Blocks of 2048, context 46 -> 48, min_overlap max(128, 46) = 128, so
    # consecutive blocks start 2048 - 128 - 2*48 = 1824 apart: 0, 1824, 3648 ends at 5696
    # >= 5000 -> 3 blocks. X: 300 fits one block, padded to 304 (a multiple of 8).
    plan = plan_blocks((5000, 300), axes="YX", div_by=DIV_BY, context=CONTEXT,
                       policy=BlockPolicy())  # fmt: skip
    assert plan is not None
    assert plan.block_size == (2048, 304)
    assert plan.min_overlap == (128, 0)
    assert plan.context == (48, 0)
    assert plan.blocks_per_axis == (3, 1)
    assert plan.padded_shape == (5000, 304)
    record = plan.record((4, 1))
    assert record["n_blocks"] == 3
    assert record["axes"] == "YX"
    assert record["n_tiles_per_block"] == [4, 1]
    assert record["reason"] == "Y (5000) is longer than prediction.block_above (4096 pixels)"
    assert all(type(v) is int for v in record["block_size"] + record["context"])


def test_layout_in_both_axes_and_a_set_overlap():
    # min_overlap 100 -> 104, stride 1024 - 104 - 96 = 824: 0, 824, 1648 (ends 2672 >= 2500).
    policy = BlockPolicy(above=2048, size=1024, min_overlap=100)
    plan = plan_blocks((2500, 2049), axes="YX", div_by=DIV_BY, context=CONTEXT, policy=policy)
    assert plan is not None
    assert plan.min_overlap == (104, 104)
    assert plan.blocks_per_axis == (3, 3)  # X: 0, 824 ends 1848 < 2049 -> a third block
    assert plan.n_blocks == 9
    assert "Y (2500) and X (2049) are longer" in plan.reason


def test_3d_volume_blocks_along_its_long_axes_only():
    # Z (40) fits one block; Y and X: context 30 -> 32 (div_by 4), min_overlap 128,
    # stride 512 - 128 - 64 = 320: 0, 320, 640 (ends 1152 >= 1000) -> 3 blocks each.
    policy = BlockPolicy(above=512, size=512)
    plan = plan_blocks((40, 1000, 1000), axes="ZYX", div_by=(1, 4, 4), context=(16, 30, 30),
                       policy=policy)  # fmt: skip
    assert plan is not None
    assert plan.block_size == (40, 512, 512)
    assert plan.context == (0, 32, 32)
    assert plan.blocks_per_axis == (1, 3, 3)
    assert plan.n_blocks == 9


def test_block_too_small_for_the_model_says_what_to_raise():
    policy = BlockPolicy(above=256, size=256)  # 128 + 2 * 64 leaves no room in 256
    with pytest.raises(BlockSettingsError, match=r"block_size \(256\) is too small .* 128"):
        plan_blocks((1000, 1000), axes="YX", div_by=DIV_BY, context=(64, 64), policy=policy)


def test_every_axis_in_one_block_is_one_piece():
    # Possible only when BlockPolicy is built directly (thresholds.yaml forbids it).
    policy = BlockPolicy(above=100, size=4096)
    assert plan_blocks((500, 500), axes="YX", div_by=DIV_BY, context=CONTEXT, policy=policy) is None


def _predictor(**prediction: object) -> StarDistPredictor:
    folder = inspect_model_folder(DEMO2D)
    parameters = resolve_parameters(folder, PredictionSettings(**prediction))  # type: ignore[arg-type]
    return StarDistPredictor(folder, parameters, device="cpu")


def test_thresholds_reach_the_predictor_and_its_description():
    predictor = _predictor(block_above=1024, block_size=512, block_min_overlap=64)
    assert predictor.parameters.blocks == BlockPolicy(above=1024, size=512, min_overlap=64)
    assert predictor.describe()["blocks"] == {
        "block_above": 1024, "block_size": 512, "block_min_overlap": 64,
    }  # fmt: skip


def test_cache_key_changes_with_the_block_policy():
    default = stardist_cache_settings(_predictor())
    assert stardist_cache_settings(_predictor()) == default
    for change in ({"block_size": 1024}, {"block_above": 0}, {"block_min_overlap": 64}):
        assert stardist_cache_settings(_predictor(**change)) != default, change


def test_cache_keeps_the_block_layout(tmp_path):
    cache = PredictionCache(tmp_path)
    layout = {"axes": "YX", "block_size": [512, 512], "n_blocks": 4, "reason": "Y (600) ..."}
    labels = np.arange(12, dtype=np.int32).reshape(3, 4)
    cache.store("ab" * 32, PredictionResult(labels=labels, n_tiles=(1, 1), blocks=layout))
    cache.store("cd" * 32, PredictionResult(labels=labels, n_tiles=(1, 1)))
    hit = cache.load("ab" * 32, shape=(3, 4))
    assert hit is not None and hit.cached
    assert hit.blocks == layout
    plain = cache.load("cd" * 32, shape=(3, 4))
    assert plain is not None and plain.blocks is None
