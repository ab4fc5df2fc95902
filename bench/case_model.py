"""Cases a and b: ``pytest --model`` against a bare predict-and-match script."""

from __future__ import annotations

from pathlib import Path

from harness import BENCH, PYTHON, REPO, Row, make_inputs, measured, median, pytest_qc, verdict

DEMO2D = REPO / "fixtures" / "models" / "demo2d"

TRAIN_TINY_MODEL = """
import sys, json, numpy as np
from stardist.models import Config2D, StarDist2D
sys.path.insert(0, sys.argv[2])
from inputs import qc_pair
pairs = [qc_pair((128, 128), 40, seed) for seed in range(8)]
X = [image.astype(np.float32) / image.max() for image, _ in pairs]
Y = [labels for _, labels in pairs]
conf = Config2D(n_rays=16, grid=(2, 2), n_channel_in=1, unet_n_depth=2, unet_n_filter_base=8,
                train_patch_size=(64, 64), train_batch_size=4, train_epochs=1,
                train_steps_per_epoch=10)
model = StarDist2D(conf, name="tiny", basedir=sys.argv[1])
model.train(X[:6], Y[:6], validation_data=(X[6:], Y[6:]), epochs=1, steps_per_epoch=10)
with open(f"{sys.argv[1]}/tiny/thresholds.json", "w") as handle:
    json.dump({"prob": 0.5, "nms": 0.4}, handle)
"""

# The floor: what anyone would write to get the same numbers without segqc.
BARE_SCRIPT = """
import json, sys
from pathlib import Path
import numpy as np, tifffile
from csbdeep.utils import normalize
from stardist.matching import matching
from stardist.models import StarDist2D
model_dir, source, target = map(Path, sys.argv[1:4])
model = StarDist2D(None, name=model_dir.name, basedir=str(model_dir.parent))
thresholds = json.loads((model_dir / "thresholds.json").read_text())
for path in sorted(source.glob("*.tif")):
    image = normalize(tifffile.imread(path), 1, 99.8, axis=(0, 1)).astype(np.float32)
    n_tiles = model._guess_n_tiles(image)
    labels, _ = model.predict_instances(
        image, prob_thresh=thresholds["prob"], nms_thresh=thresholds["nms"],
        n_tiles=n_tiles if any(n > 1 for n in n_tiles) else None, verbose=False,
        show_tile_progress=False)
    matching(tifffile.imread(target / path.name), labels, thresh=0.5)
"""


def model_rows(work: Path, n_images: int, repeats: int) -> list[Row]:
    """Cases a and b, each the median of ``repeats`` runs interleaved with the floor's.

    Parameters
    ----------
    work : Path
        The bench's work folder.
    n_images : int
        The number of 384 x 384 QC images (200 nuclei each).
    repeats : int
        Runs of each side.

    Returns
    -------
    list of Row
        Rows a and b.
    """
    if DEMO2D.is_dir():
        model = DEMO2D
    else:  # a tiny StarDist2D: poor predictions, which do not matter for timing
        script = work / "train_tiny.py"
        script.write_text(TRAIN_TINY_MODEL)
        measured([PYTHON, str(script), str(work / "models"), str(BENCH)], work)
        model = work / "models" / "tiny"
    qc = Path(str(make_inputs("model-qc", work / "qc_model", n_images)["folder"]))
    bare = work / "bare.py"
    bare.write_text(BARE_SCRIPT)
    floors, firsts, seconds = [], [], []
    for attempt in range(repeats):  # interleaved, so drifts in machine load hit both sides
        floors.append(
            measured([PYTHON, str(bare), str(model), str(qc / "source"), str(qc / "target")], work)
        )
        suite = pytest_qc(
            f"--model={model}", f"--qc-source={qc / 'source'}", f"--qc-target={qc / 'target'}",
            f"--qc-output={work / f'out_a{attempt}'}",
        )  # fmt: skip
        firsts.append(measured(suite, work))  # a new output folder: an empty cache
        seconds.append(measured(suite, work))
    floor, first, second = median(floors), median(firsts), median(seconds)
    a, b = first.wall / floor.wall, second.wall / first.wall
    return [
        Row(
            f"a. pytest --model, {n_images} images ({model.name})",
            "bare predict+matching",
            f"{first.wall:.1f} s, {first.rss:.0f} MiB",
            f"{floor.wall:.1f} s, {floor.rss:.0f} MiB",
            f"{a:.2f}x",
            "<= 1.15",
            verdict(a <= 1.15, informative=True),
        ),
        Row(
            "b. same run, prediction cache warm",
            "first run (a)",
            f"{second.wall:.1f} s, {second.rss:.0f} MiB",
            f"{first.wall:.1f} s, {first.rss:.0f} MiB",
            f"{b:.2f}x",
            "<= 0.15",
            verdict(b <= 0.15),
        ),
    ]
