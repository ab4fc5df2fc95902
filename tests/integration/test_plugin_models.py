"""The plugin with other StarDist models: the 3D demo model end to end, multi-channel.

The two-channel model is built here from a Config and saved with its untrained weights,
which predict nonsense: that test checks that multi-channel models run through the whole
suite, not how good they are. pytester runs in-process so TensorFlow is imported once.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

pytest.importorskip("tensorflow")
stardist_models = pytest.importorskip("stardist.models")
from stardist.matching import matching  # noqa: E402

from segqc.metrics.catalogue import METRIC_KEYS, ZEROCOST_KEYS  # noqa: E402
from tests.helpers import DEMO3D, OPTIONAL_SKIPPED, QC3D  # noqa: E402

QC = ("--pyargs", "segqc.qc_tests")


def _save(model: object, folder: Path) -> Path:
    with contextlib.redirect_stdout(io.StringIO()):
        model.keras_model.save_weights(str(folder / "weights_best.h5"))  # type: ignore[attr-defined]
    (folder / "thresholds.json").write_text(json.dumps({"prob": 0.5, "nms": 0.4}))
    return folder


@pytest.fixture(scope="module")
def tiny2d_two_channels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("models")
    config = stardist_models.Config2D(
        n_rays=8,
        n_channel_in=2,
        grid=(2, 2),
        unet_n_depth=1,
        unet_n_filter_base=4,
        train_patch_size=(16, 16),
    )
    with contextlib.redirect_stdout(io.StringIO()):
        model = stardist_models.StarDist2D(config, name="tiny2c", basedir=str(base))
    return _save(model, base / "tiny2c")


def test_3d_demo_model_runs_end_to_end_with_every_metric(pytester):
    limits = pytester.path / "limits.yaml"
    limits.write_text(
        "per_image:\n  seg: {min: 0.0}\n  aji: {min: 0.0}\naggregate:\n  dsb_score: {min: 0.0}\n"
    )
    result = pytester.runpytest(
        *QC, f"--model={DEMO3D}", f"--qc-source={QC3D / 'source'}",
        f"--qc-target={QC3D / 'target'}", f"--thresholds={limits}", "-v",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-2000:]
    result.stdout.fnmatch_lines(["*test_image?stardist3d_y037.tif? PASSED*"])

    out = pytester.path / "qc-output"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["predictor"]["kind"] == "StarDist3D model"
    config = json.loads((DEMO3D / "config.json").read_text())
    assert summary["predictor"]["anisotropy"] == config["anisotropy"]
    assert len(summary["images"]) == 3
    for record in summary["images"]:
        assert record["status"] == "evaluated", record["error"]
        assert list(record["metrics"]) == list(METRIC_KEYS)
        assert len(record["n_tiles"]) == 3
        truth = tifffile.imread(record["target"])
        predicted = tifffile.imread(record["prediction_file"])
        assert predicted.shape == truth.shape and truth.ndim == 3
        # The metrics of a volume are stardist.matching's on that volume.
        reference = matching(truth, predicted, thresh=0.5)
        for key in ZEROCOST_KEYS[1:]:
            assert record["metrics"][key] == pytest.approx(getattr(reference, key), abs=1e-12)
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[-5:] == ["seg", "aji", "dsb_score", "sq", "rq"]


def test_3d_model_is_loaded_with_its_anisotropy():
    from segqc.predict.model_folder import inspect_model_folder
    from segqc.predict.stardist import PredictionParameters, StarDistPredictor

    predictor = StarDistPredictor(
        inspect_model_folder(DEMO3D), PredictionParameters(0.5, 0.4, "test"), device="cpu"
    )
    predictor.load()
    # The model StarDist built, not only the folder's config.json, has the anisotropy.
    config = predictor._model.config
    expected = tuple(json.loads((DEMO3D / "config.json").read_text())["anisotropy"])
    assert tuple(config.anisotropy) == expected
    assert tuple(config.rays_json["kwargs"]["anisotropy"]) == expected


def test_two_channel_model_fails_single_channel_images_only(pytester, make_qc, tiny2d_two_channels):
    qc = make_qc(2, root=pytester.path / "qc")
    # A third image saved as an ImageJ channel-first hyperstack with two channels.
    labels = tifffile.imread(qc.target / "img00.tif")
    two = np.stack([tifffile.imread(qc.source / "img00.tif")] * 2)
    tifffile.imwrite(qc.source / "img02.tif", two, imagej=True, metadata={"axes": "CYX"})
    tifffile.imwrite(qc.target / "img02.tif", labels)
    limits = pytester.path / "limits.yaml"
    limits.write_text("matching:\n  iou_threshold: 0.5\n")
    result = pytester.runpytest(
        *QC, f"--model={tiny2d_two_channels}", f"--qc-source={qc.source}",
        f"--qc-target={qc.target}", f"--thresholds={limits}", "-rf",
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=2, skipped=2 + OPTIONAL_SKIPPED)
    result.stdout.fnmatch_lines(
        [
            "*_ test_image?img00.tif? _*",
            "*/qc/source/img00.tif: image has 1 channel (axes YX, shape (64, 128)) but the "
            "model expects 2 (n_channel_in in config.json)",
        ]
    )
    text = result.stdout.str()
    assert "Traceback" not in text and "INTERNALERROR" not in text
    summary = json.loads((pytester.path / "qc-output" / "summary.json").read_text())
    assert [r["status"] for r in summary["images"]] == ["error", "error", "evaluated"]
