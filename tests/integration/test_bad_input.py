"""Bad input and faults: a clear error for every mistake, and nothing lost.

One row per mistake a user (or a CI job nobody watches) can make. Each row checks:

* the exit code: 4 for usage errors (options, config, folders, model folder), 1 when
  images fail or error, 2 when interrupted, 0 when segqc copes;
* a one-line message naming the file and the problem;
* no Python traceback;
* for per-image problems: the other images are still evaluated, and metrics.csv and
  summary.json are written for them.

QC data: three images of 10 disks (tests/conftest.py ``make_qc``); ``img01.tif`` is the
one broken by most rows. Rows marked ``model`` run an untrained tiny StarDist2D
(``tiny_model_dir``) because the mistake only shows when predicting.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pytest
import tifffile

from tests.helpers import QcFolders, disks, image_from

QC = ("--pyargs", "segqc.qc_tests")
NO_LIMITS = "matching:\n  iou_threshold: 0.5\n"

# Faults are injected by a conftest in the pytester project. The runs are in-process (as
# fast as pytester gets), so each fault is undone when its run ends: the modules it
# patches are shared with the tests that follow.
UNDO = "def pytest_unconfigure(config):\n    {module}.{name} = {saved}\n"


@dataclass
class Scenario:
    """The QC folders and command line of one row; setups edit it."""

    root: Path
    qc: QcFolders
    model: Path | None = None
    args: list[str] = field(default_factory=list)
    thresholds_text: str | None = NO_LIMITS
    use_source: bool = True

    def command_line(self) -> list[str]:
        # The '=' form: the model folder lies outside the project, as in a user's CI.
        args = [*QC, f"--qc-target={self.qc.target}"]
        if self.model is not None:
            args.append(f"--model={self.model}")
        else:
            args.append(f"--predictions={self.qc.predictions}")
        if self.use_source:
            args.append(f"--qc-source={self.qc.source}")
        if self.thresholds_text is not None:
            path = self.root / "limits.yaml"
            path.write_text(self.thresholds_text)
            args.append(f"--thresholds={path}")
        return args + self.args


@dataclass(frozen=True)
class Row:
    id: str
    setup: Callable[[Scenario], None]
    exit_code: int
    message: str
    evaluated: tuple[str, ...] | None = None  # images expected in metrics.csv
    needs_model: bool = False


def write(path: Path, array: np.ndarray) -> None:
    tifffile.imwrite(path, array)


# --- setups ------------------------------------------------------------------------


def source_missing(s: Scenario) -> None:
    shutil.rmtree(s.qc.source)


def target_missing(s: Scenario) -> None:
    shutil.rmtree(s.qc.target)


def source_empty(s: Scenario) -> None:
    for path in s.qc.source.iterdir():
        path.unlink()


def source_without_target(s: Scenario) -> None:
    (s.qc.target / "img01.tif").unlink()


def target_without_source(s: Scenario) -> None:
    (s.qc.source / "img01.tif").unlink()


def duplicate_extensions(s: Scenario) -> None:
    shutil.copy(s.qc.source / "img01.tif", s.qc.source / "img01.tiff")


def non_tiff_files(s: Scenario) -> None:
    (s.qc.source / "notes.txt").write_text("acquired on Tuesday")
    (s.qc.target / "img00.png").write_bytes(b"\x89PNG")


def unreadable_file(s: Scenario) -> None:
    path = s.qc.target / "img01.tif"
    if os.geteuid() != 0:
        path.chmod(0)
        return
    # root reads everything: make tifffile meet the same PermissionError instead
    (s.root / "conftest.py").write_text(
        "import tifffile\n"
        "_imread = tifffile.imread\n"
        "def imread(path, *a, **k):\n"
        "    if str(path).endswith('target/img01.tif'):\n"
        "        raise PermissionError(13, 'Permission denied', str(path))\n"
        "    return _imread(path, *a, **k)\n"
        "def pytest_configure(config):\n"
        "    tifffile.imread = imread\n"
        + UNDO.format(module="tifffile", name="imread", saved="_imread")
    )


def zero_byte_tiff(s: Scenario) -> None:
    (s.qc.target / "img01.tif").write_bytes(b"")


def truncated_tiff(s: Scenario) -> None:
    path = s.qc.target / "img01.tif"
    path.write_bytes(path.read_bytes()[:300])


def float_mask(s: Scenario) -> None:
    write(s.qc.target / "img01.tif", disks((64, 128), 10).astype(np.float32))


def negative_labels(s: Scenario) -> None:
    write(s.qc.target / "img01.tif", -disks((64, 128), 10).astype(np.int32))


def boolean_masks(s: Scenario) -> None:
    # Disks do not touch, so connected components give back the 10 objects.
    write(s.qc.target / "img01.tif", disks((64, 128), 10) > 0)
    s.thresholds_text = "per_image:\n  f1: {min: 1.0}\n"


def many_labels(s: Scenario) -> None:
    # 70,000 one-pixel objects (labels beyond uint16), predicted perfectly.
    labels = np.arange(1, 70_001, dtype=np.uint32).reshape(280, 250)
    write(s.qc.target / "img01.tif", labels)
    write(s.qc.predictions / "img01.tif", labels)
    write(s.qc.source / "img01.tif", image_from(labels > 0))
    s.thresholds_text = "per_image:\n  f1: {min: 1.0}\n"  # every one of the 70,000 matched


def mask_shape_differs(s: Scenario) -> None:
    write(s.qc.target / "img01.tif", disks((32, 32), 2))


def mask_2d_for_3d_image(s: Scenario) -> None:
    write(s.qc.source / "img01.tif", np.stack([image_from(disks((64, 128), 10))] * 5))


def nan_pixels(s: Scenario) -> None:
    image = image_from(disks((64, 128), 10)).astype(np.float32)
    image[3, 4] = np.nan
    write(s.qc.source / "img01.tif", image)


def constant_image(s: Scenario) -> None:
    write(s.qc.source / "img01.tif", np.full((64, 128), 7, np.uint16))


def wrong_channel_count(s: Scenario) -> None:
    write(s.qc.source / "img01.tif", np.zeros((64, 128, 2), np.uint16) + 5)


def model_folder_missing(s: Scenario) -> None:
    s.model = s.root / "no_such_model"


def _copy_model(s: Scenario) -> Path:
    assert s.model is not None
    copy = s.root / "model"
    shutil.copytree(s.model, copy)
    s.model = copy
    return copy


def config_missing(s: Scenario) -> None:
    (_copy_model(s) / "config.json").unlink()


def config_invalid_json(s: Scenario) -> None:
    (_copy_model(s) / "config.json").write_text('{"n_dim": 2,\n "n_rays": }')


def no_weights(s: Scenario) -> None:
    (_copy_model(s) / "weights_best.h5").unlink()


def truncated_weights(s: Scenario) -> None:
    (_copy_model(s) / "weights_best.h5").write_bytes(b"version https://git-lfs\n")


def thresholds_json_missing(s: Scenario) -> None:
    (_copy_model(s) / "thresholds.json").unlink()


def thresholds_json_out_of_range(s: Scenario) -> None:
    (_copy_model(s) / "thresholds.json").write_text('{"prob": 1.7, "nms": 0.4}')


def model_predicts_nothing(s: Scenario) -> None:
    s.thresholds_text = "prediction:\n  prob_thresh: 1.0\nper_image:\n  f1: {min: 0.5}\n"


def tens_of_thousands_predicted(s: Scenario) -> None:
    # A speckle model: every pixel of a 256 x 256 image is its own object (65,536), and
    # none overlaps a ground-truth disk by IoU >= 0.5, so tp = 0 and precision = 0.
    truth = disks((256, 256), 100)
    write(s.qc.target / "img01.tif", truth)
    write(s.qc.source / "img01.tif", image_from(truth))
    speckles = np.arange(1, 256 * 256 + 1, dtype=np.uint32).reshape(256, 256)
    write(s.qc.predictions / "img01.tif", speckles)
    s.thresholds_text = "per_image:\n  precision: {min: 0.5}\n"


def thresholds_missing(s: Scenario) -> None:
    s.thresholds_text = None
    s.args += [f"--thresholds={s.root / 'missing.yaml'}"]


def thresholds_syntax_error(s: Scenario) -> None:
    s.thresholds_text = "per_image:\n  f1: {min: 0.7\n"


def thresholds_empty(s: Scenario) -> None:
    s.thresholds_text = ""


def thresholds_unknown_key(s: Scenario) -> None:
    s.thresholds_text = "per_image:\n  recal: {min: 0.7}\n"


def thresholds_wrong_type(s: Scenario) -> None:
    s.thresholds_text = "aggregate:\n  f1: {min: [0.7]}\n"


def thresholds_min_above_max(s: Scenario) -> None:
    s.thresholds_text = "image_mean:\n  f1: {min: 0.9, max: 0.8}\n"


def output_not_writable(s: Scenario) -> None:
    (s.root / "a_file").write_text("not a folder")
    s.args += [f"--qc-output={s.root / 'a_file' / 'out'}"]


def output_has_foreign_files(s: Scenario) -> None:
    out = s.root / "qc-output"
    out.mkdir()
    (out / "metrics.csv").write_text("my own table\n")
    s.args += [f"--qc-output={out}"]


def disk_full(s: Scenario) -> None:
    (s.root / "conftest.py").write_text(
        "import errno, os\n"
        "_fsync = os.fsync\n"
        "def full(fd):\n"
        "    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
        "def pytest_sessionstart(session):\n"
        "    os.fsync = full\n" + UNDO.format(module="os", name="fsync", saved="_fsync")
    )


def interrupted(s: Scenario) -> None:
    (s.root / "conftest.py").write_text(
        "import segqc.predict.folder as p\n"
        "_predict = p.PredictionsFolder.predict\n"
        "def predict(self, pair, image):\n"
        "    if pair.name == 'img01.tif':\n"
        "        raise KeyboardInterrupt\n"
        "    return _predict(self, pair, image)\n"
        "def pytest_configure(config):\n"
        "    p.PredictionsFolder.predict = predict\n"
        + UNDO.format(module="p.PredictionsFolder", name="predict", saved="_predict")
    )


OTHERS = ("img00.tif", "img02.tif")
ALL = ("img00.tif", "img01.tif", "img02.tif")

ROWS = [
    # folders
    Row("source-missing", source_missing, 4, "*source folder */source does not exist*"),
    Row("target-missing", target_missing, 4, "*target folder */target does not exist*"),
    Row("source-empty", source_empty, 4, "*source folder */source contains no .tif/.tiff images*"),
    Row("source-without-target", source_without_target, 4, "*no ground truth in */target for: img01.tif*"),
    Row("target-without-source", target_without_source, 4, "*no source image in */source for: img01.tif*"),
    Row("duplicate-extensions", duplicate_extensions, 4, "*img01.tif and img01.tiff differ only by extension*"),
    Row("non-tiff-files", non_tiff_files, 0, "segqc: ignored (not .tif/.tiff): notes.txt, img00.png", ALL),
    Row("unreadable-file", unreadable_file, 1, "*target/img01.tif: permission denied*", OTHERS),
    Row("zero-byte-tiff", zero_byte_tiff, 1, "*target/img01.tif: the file is empty (0 bytes)*", OTHERS),
    Row("truncated-tiff", truncated_tiff, 1, "*target/img01.tif: not a readable TIFF*truncated*", OTHERS),
    # masks
    Row("float-mask", float_mask, 1, "*target/img01.tif: ground truth has float dtype float32*", OTHERS),
    Row("negative-labels", negative_labels, 1, "*target/img01.tif: ground truth contains negative labels*", OTHERS),
    Row("boolean-mask", boolean_masks, 0, "*binary ground truth mask; objects taken as its connected components*", ALL),
    Row("over-65535-labels", many_labels, 0, "*passed*", ALL),
    Row("mask-shape-differs", mask_shape_differs, 1, "*img01.tif: prediction shape (64, 128) and ground truth shape (32, 32) differ*", OTHERS),
    Row("2d-mask-3d-image", mask_2d_for_3d_image, 1, "*img01.tif: source image shape (5, 64, 128) and ground truth shape (64, 128) differ*", OTHERS, needs_model=True),
    # images
    Row("nan-pixels", nan_pixels, 1, "*source/img01.tif: image contains NaN or infinite pixels*", OTHERS, needs_model=True),
    Row("constant-image", constant_image, 1, "*source/img01.tif: image is constant (every pixel is 7)*", OTHERS, needs_model=True),
    Row("wrong-channel-count", wrong_channel_count, 1, "*source/img01.tif: image has 2 channels (axes YXC, shape (64, 128, 2)) but the model expects 1 (n_channel_in in config.json)*", OTHERS, needs_model=True),
    # model
    Row("model-folder-missing", model_folder_missing, 4, "*no_such_model: model folder does not exist*", needs_model=True),
    Row("config-json-missing", config_missing, 4, "*model: no config.json; --model must point at the folder*", needs_model=True),
    Row("config-json-invalid", config_invalid_json, 4, "*model/config.json:2:12: invalid JSON*", needs_model=True),
    Row("no-weights", no_weights, 4, "*model: no weights file*", needs_model=True),
    Row("weights-not-hdf5", truncated_weights, 4, "*weights_best.h5: not an HDF5 weights file*", needs_model=True),
    Row("thresholds-json-missing", thresholds_json_missing, 0, "*from StarDist defaults (the model folder has no thresholds.json)*", ALL, needs_model=True),
    Row("thresholds-json-out-of-range", thresholds_json_out_of_range, 4, "*thresholds.json: 'prob' must be a number between 0 and 1, got 1.7*", needs_model=True),
    Row("model-predicts-nothing", model_predicts_nothing, 1, "*img00.tif: f1 = 0 < min 0.5*", ALL, needs_model=True),
    Row("tens-of-thousands-predicted", tens_of_thousands_predicted, 1, "*img01.tif: precision = 0 < min 0.5*", ALL),
    # config
    Row("thresholds-missing", thresholds_missing, 4, "*missing.yaml: file not found*"),
    Row("thresholds-syntax-error", thresholds_syntax_error, 4, "*limits.yaml:3:1: YAML syntax error*"),
    Row("thresholds-empty", thresholds_empty, 4, "*limits.yaml: the file is empty*"),
    Row("thresholds-unknown-key", thresholds_unknown_key, 4, "*limits.yaml: per_image.recal: unknown metric; did you mean 'recall'?*"),
    Row("thresholds-wrong-type", thresholds_wrong_type, 4, "*limits.yaml: aggregate.f1.min: Input should be a valid number*"),
    Row("thresholds-min-above-max", thresholds_min_above_max, 4, "*limits.yaml: image_mean.f1: min (0.9) is greater than max (0.8)*"),
    # run
    Row("output-not-writable", output_not_writable, 4, "*a_file/out: output folder is not writable*"),
    Row("output-has-foreign-files", output_has_foreign_files, 4, "*qc-output: already contains metrics.csv not written by segqc*--qc-overwrite*"),
    Row("disk-full", disk_full, 1, "*metrics.csv: cannot write (No space left on device)*"),
    Row("interrupted", interrupted, 2, "*KeyboardInterrupt*", ("img00.tif",)),
]  # fmt: skip


WITHOUT_MODEL = [row for row in ROWS if not row.needs_model]
WITH_MODEL = [row for row in ROWS if row.needs_model]


@pytest.mark.parametrize("row", WITHOUT_MODEL, ids=[row.id for row in WITHOUT_MODEL])
def test_bad_input(row: Row, pytester: pytest.Pytester, make_qc) -> None:
    scenario = Scenario(root=pytester.path, qc=make_qc(3, root=pytester.path / "qc"))
    check_row(row, scenario, pytester)


@pytest.mark.parametrize("row", WITH_MODEL, ids=[row.id for row in WITH_MODEL])
def test_bad_input_with_model(
    row: Row, tiny_model_dir: Path, pytester: pytest.Pytester, make_qc
) -> None:
    # tiny_model_dir is session-scoped, so TensorFlow is imported before pytester takes
    # its sys.modules snapshot (see tests/conftest.py).
    scenario = Scenario(root=pytester.path, qc=make_qc(3, root=pytester.path / "qc"))
    scenario.model = tiny_model_dir
    check_row(row, scenario, pytester)


def check_row(row: Row, scenario: Scenario, pytester: pytest.Pytester) -> None:
    row.setup(scenario)
    # no_reraise_ctrlc: the interrupted row's KeyboardInterrupt ends its run, not this one
    result = pytester.runpytest(*scenario.command_line(), "-rfE", no_reraise_ctrlc=True)
    output = result.stdout.str() + "\n" + result.stderr.str()

    assert result.ret == row.exit_code, output
    assert any(fnmatch(line, row.message) for line in output.splitlines()), output
    assert "Traceback" not in output and "INTERNALERROR" not in output, output

    out = _output_dir(scenario)
    if row.evaluated is not None:
        summary = json.loads((out / "summary.json").read_text())
        status = {image["name"]: image["status"] for image in summary["images"]}
        assert all(status[name] == "evaluated" for name in row.evaluated), status
        csv_rows = (out / "metrics.csv").read_text().splitlines()[1:]
        assert [line.split(",")[0] for line in csv_rows] == [
            name for name in ALL if status.get(name) == "evaluated"
        ]
        assert (out / "report.html").is_file()
    if row.exit_code == 4:
        assert not (out / "summary.json").exists()


def _output_dir(scenario: Scenario) -> Path:
    if "--qc-output" in scenario.args:
        return Path(scenario.args[scenario.args.index("--qc-output") + 1])
    return scenario.root / "qc-output"


def test_interrupted_run_writes_a_summary_that_says_it_is_partial(pytester, make_qc):
    scenario = Scenario(root=pytester.path, qc=make_qc(3, root=pytester.path / "qc"))
    interrupted(scenario)
    result = pytester.runpytest(*scenario.command_line(), no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    summary = json.loads((pytester.path / "qc-output" / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["complete"] is False
    assert summary["qc"]["n_evaluated"] == 1


def test_disk_full_leaves_no_temporary_files(pytester, make_qc):
    scenario = Scenario(root=pytester.path, qc=make_qc(2, root=pytester.path / "qc"))
    disk_full(scenario)
    result = pytester.runpytest(*scenario.command_line())
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    leftovers = {p.name for p in (pytester.path / "qc-output").iterdir()}
    assert not {"metrics.csv", "summary.json"} & leftovers
    assert not [name for name in leftovers if name.endswith(".tmp")]


def test_second_run_replaces_outputs_and_touches_nothing_else(pytester, make_qc):
    qc = make_qc(2, root=pytester.path / "qc")
    args = [*QC, f"--predictions={qc.predictions}", f"--qc-target={qc.target}"]
    assert pytester.runpytest(*args).ret == 0
    out = pytester.path / "qc-output"
    (out / "my_notes.txt").write_text("keep me")
    first = (out / "metrics.csv").read_text()
    make_qc(2, dropped=(3, 3), root=pytester.path / "qc")  # rewrite predictions
    pytester.runpytest(*args)
    assert (out / "metrics.csv").read_text() != first
    assert ",7,3," in (out / "metrics.csv").read_text()  # tp 7, fn 3 after dropping 3 of 10
    assert (out / "my_notes.txt").read_text() == "keep me"


def test_overwrite_flag_takes_over_a_folder_with_foreign_outputs(pytester, make_qc):
    scenario = Scenario(root=pytester.path, qc=make_qc(1, root=pytester.path / "qc"))
    output_has_foreign_files(scenario)
    result = pytester.runpytest(*scenario.command_line(), "--qc-overwrite")
    assert result.ret == 0
    assert (pytester.path / "qc-output" / "metrics.csv").read_text().startswith("image,")


def test_outputs_get_ordinary_file_permissions(pytester, make_qc):
    qc = make_qc(1, root=pytester.path / "qc")
    old = os.umask(0o022)
    try:
        result = pytester.runpytest(
            *QC, f"--predictions={qc.predictions}", f"--qc-target={qc.target}"
        )
    finally:
        os.umask(old)
    assert result.ret == 0
    mode = (pytester.path / "qc-output" / "metrics.csv").stat().st_mode & 0o777
    assert mode == 0o644  # not the 0600 of a temporary file
