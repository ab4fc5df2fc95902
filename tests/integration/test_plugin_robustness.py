"""Robustness as a user runs it: one QC test per perturbation and image.

The model double thresholds the raw (un-normalised) image at a fixed grey value and is
supplied through the ``pytest_segqc_make_predictor`` hook (the model folder is then
never read): on ``make_qc``'s images (background ~100, nuclei ~500) it is exact, under
x2 intensity the background (~200 +- 40) crosses the threshold and the prediction
breaks.
"""

import json

QC = ("--pyargs", "segqc.qc_tests")


RAW_THRESHOLD_CONFTEST = """
import numpy as np
from skimage.measure import label
from segqc.predict import PredictionResult

class RawThreshold:
    needs_source_image = True
    def predict(self, pair, image):
        return PredictionResult(labels=label(np.asarray(image) > 180, connectivity=1))
    def describe(self):
        return {"kind": "raw threshold at 180 (test double)"}

def pytest_segqc_make_predictor(config, model_dir):
    return RawThreshold()
"""


def test_a_model_without_normalisation_fails_under_x2_intensity(pytester, make_qc):
    qc = make_qc(2, root=pytester.path / "qc")
    pytester.makeconftest(RAW_THRESHOLD_CONFTEST)
    (pytester.path / "limits.yaml").write_text(
        "robustness:\n  intensity_scale: {factors: [0.5, 2], max_drop: {f1: 0.05}}\n"
        "  flip: {axes: [x]}\n"
    )
    result = pytester.runpytest(
        *QC, f"--model={pytester.mkdir('model')}", f"--qc-source={qc.source}",
        f"--qc-target={qc.target}", "--thresholds", "limits.yaml", "-v",
    )  # fmt: skip
    result.stdout.fnmatch_lines(
        [
            "*test_robustness?intensity_scale-x0.5?img00.tif?? PASSED*",
            "*test_robustness?intensity_scale-x0.5?img01.tif?? PASSED*",
            "*test_robustness?intensity_scale-x2?img00.tif?? FAILED*",
            "*test_robustness?intensity_scale-x2?img01.tif?? FAILED*",
            "*test_robustness?flip-x?img00.tif?? PASSED*",
        ]
    )
    result.stdout.fnmatch_lines(
        ["img00.tif, intensity_scale-x2: f1 dropped by * (1 -> *), more than 0.05 "
         "(thresholds.yaml robustness.intensity_scale.max_drop.f1)"]
    )  # fmt: skip
    assert "Traceback" not in result.stdout.str()
    summary = json.loads((pytester.path / "qc-output" / "summary.json").read_text())
    table = {(r["perturbation"], r["image"]): r for r in summary["robustness"]["results"]}
    assert table["intensity_scale-x0.5", "img00.tif"]["drop"]["f1"] == 0.0
    assert table["intensity_scale-x2", "img00.tif"]["drop"]["f1"] > 0.5
    assert table["flip-x", "img01.tif"]["passed"] is True
    assert summary["robustness"]["perturbations"] == [
        "intensity_scale-x0.5", "intensity_scale-x2", "flip-x",
    ]  # fmt: skip


def test_robustness_is_skipped_with_predictions(pytester, make_qc):
    qc = make_qc(1, root=pytester.path / "qc")
    result = pytester.runpytest(
        *QC, f"--predictions={qc.predictions}", f"--qc-target={qc.target}",
        "--robustness", "-rs",
    )  # fmt: skip
    result.stdout.fnmatch_lines(["*robustness needs a model to predict perturbed images*"])


def test_tiny_model_gets_a_robustness_test_per_perturbation_and_image(
    pytester, make_qc, tiny_model_dir
):
    qc = make_qc(1, root=pytester.path / "qc")
    result = pytester.runpytest(
        *QC, f"--model={tiny_model_dir}", f"--qc-source={qc.source}",
        f"--qc-target={qc.target}", "--robustness", "-v", "-k", "robustness",
    )  # fmt: skip
    # --robustness alone: the default plan, 9 perturbations (snr10, peak100, x0.5, x2,
    # +0.1, sigma1, flip-y, flip-x, rot90-k1) for the one image (tests above: per image)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 9
    result.stdout.fnmatch_lines(["*test_robustness?rot90-k1?img00.tif??*"])
    summary = json.loads((pytester.path / "qc-output" / "summary.json").read_text())
    assert len(summary["robustness"]["results"]) == 9
