"""One bad image never sinks the others, and the gate never judges the wrong pixels.

Issue 16, run the way a user runs segqc (pytester). QC data: three images of 10 disks
(tests/conftest.py ``make_qc``); ``img01.tif`` is the one made bad. For a bad image each
test checks that only ``test_image[img01.tif]`` fails, with one line naming the file and
the problem, without a Python traceback, and that the other two images are evaluated
(metrics.csv and summary.json list them).
"""

from __future__ import annotations

import csv
import json
import math
import zlib
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pytest
import tifffile

from tests.helpers import QcFolders, disks, image_from

QC = ("--pyargs", "segqc.qc_tests")
NO_LIMITS = "matching:\n  iou_threshold: 0.5\n"
BAD = "img01.tif"
OTHERS = ["img00.tif", "img02.tif"]


def run_qc(
    pytester: pytest.Pytester,
    qc: QcFolders,
    *,
    limits: str = NO_LIMITS,
    source: bool = False,
    model: Path | None = None,
    subprocess: bool = False,
) -> pytest.RunResult:
    (pytester.path / "limits.yaml").write_text(limits)
    # --option=value: pytest would take a bare path for a test path (and a rootdir from it)
    options = {"--qc-target": qc.target, "--thresholds": pytester.path / "limits.yaml"}
    if model is not None:
        options |= {"--model": model, "--qc-source": qc.source}
    else:
        options["--predictions"] = qc.predictions
        if source:
            options["--qc-source"] = qc.source
    args = [*QC, *(f"{option}={path}" for option, path in options.items())]
    run = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    return run(*args, "-rfE")


def output_of(result: pytest.RunResult) -> str:
    return result.stdout.str() + "\n" + result.stderr.str()


def evaluated_images(pytester: pytest.Pytester) -> list[str]:
    """The images of metrics.csv, checked against summary.json's statuses."""
    out = pytester.path / "qc-output"
    with (out / "metrics.csv").open(newline="") as table:
        rows = [row["image"] for row in csv.DictReader(table)]
    summary = json.loads((out / "summary.json").read_text())
    status = {image["name"]: image["status"] for image in summary["images"]}
    assert [name for name, s in status.items() if s == "evaluated"] == rows, status
    return rows


def assert_only_bad_image_failed(
    result: pytest.RunResult, pytester: pytest.Pytester, message: str
) -> None:
    """Only img01's test fails, with exactly the one line ``message`` (a glob)."""
    output = output_of(result)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output
    assert result.parseoutcomes()["failed"] == 1, output
    assert "Traceback" not in output and "INTERNALERROR" not in output, output
    lines = result.stdout.lines
    header = next(
        (i for i, line in enumerate(lines) if fnmatch(line, f"*_ test_image?{BAD}? _*")), None
    )
    assert header is not None, output
    # The failure is one line: the next one starts the next section.
    assert fnmatch(lines[header + 1], message), output
    assert lines[header + 2].startswith(("=", "_")), output
    assert evaluated_images(pytester) == OTHERS


def write(path: Path, array: np.ndarray) -> None:
    tifffile.imwrite(path, array)


# --- point 9: any failure of one image fails that image only -----------------------------


def test_a_4d_ground_truth_fails_only_its_image(pytester: pytest.Pytester, make_qc) -> None:
    qc = make_qc(3, root=pytester.path / "qc")
    labels = disks((64, 128), 10)
    write(qc.target / BAD, labels[np.newaxis, np.newaxis])
    write(qc.predictions / BAD, labels[np.newaxis, np.newaxis])
    result = run_qc(pytester, qc)
    assert_only_bad_image_failed(
        result,
        pytester,
        f"{qc.target / BAD}: ground truth has 4 dimensions (shape (1, 1, 64, 128)); segqc "
        "takes 2D (YX) or 3D (ZYX) label images: save it without its axes of size 1",
    )


def write_sparse_whole_slide(path: Path, side: int = 20_000, tile: int = 1024) -> None:
    """A side x side uint32 label image, zero but for two small squares (labels 1 and
    70,000), written tile by tile from compressed bytes: 1.6 GB of pixels, 1.6 MB of file,
    written in milliseconds."""
    first = np.zeros((tile, tile), np.uint32)
    first[10:20, 10:20] = 1
    first[40:50, 40:50] = 70_000
    empty = zlib.compress(np.zeros((tile, tile), np.uint32).tobytes())
    n_tiles = math.ceil(side / tile) ** 2

    def tiles():
        yield zlib.compress(first.tobytes())
        for _ in range(n_tiles - 1):
            yield empty

    tifffile.imwrite(
        path, tiles(), shape=(side, side), dtype=np.uint32, tile=(tile, tile), compression="zlib"
    )


#: Run in the pytest subprocess: 1.25 GiB of address space more than it has at start
#: (about 0.2 GiB), so a 20,000 x 20,000 uint32 image (1.49 GiB) cannot be allocated while
#: the 64 x 128 images can. This is a machine with less memory than the image needs.
MEMORY_CAP_CONFTEST = """
import resource

def pytest_configure(config):
    with open("/proc/self/status") as status:
        used = dict(line.split(":", 1) for line in status)["VmSize"].split()[0]
    cap = int(used) * 1024 + 1280 * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
def test_an_image_larger_than_memory_fails_only_itself(
    pytester: pytest.Pytester, make_qc, worker_path: None
) -> None:
    qc = make_qc(3, root=pytester.path / "qc")
    write_sparse_whole_slide(qc.target / BAD)
    write_sparse_whole_slide(qc.predictions / BAD)
    pytester.makeconftest(MEMORY_CAP_CONFTEST)
    result = run_qc(pytester, qc, subprocess=True)
    assert_only_bad_image_failed(
        result,
        pytester,
        f"{qc.target / BAD}: not enough memory to read this image (20000 x 20000 uint32, 1.5 GiB)",
    )


def test_a_source_with_two_extra_axes_fails_only_its_image(
    pytester: pytest.Pytester, make_qc
) -> None:
    qc = make_qc(3, root=pytester.path / "qc")
    plane = image_from(disks((64, 128), 10))
    write(qc.source / BAD, np.stack([np.stack([plane, plane])] * 3))  # (3, 2, 64, 128)
    result = run_qc(pytester, qc, source=True)
    assert_only_bad_image_failed(
        result,
        pytester,
        f"{qc.source / BAD}: source image shape (3, 2, 64, 128) and ground truth shape "
        "(64, 128) differ; the source must have the ground truth's YX size, with at most "
        "one channel axis",
    )


#: The image library fails on img01's pictures only: img01 is 64 x 96, the others 64 x 128.
BROKEN_DRAWING_CONFTEST = """
import PIL.Image

_fromarray = PIL.Image.fromarray

def fromarray(obj, *args, **kwargs):
    if tuple(getattr(obj, "shape", ()))[:2] == (64, 96):
        raise RuntimeError("the drawing library failed")
    return _fromarray(obj, *args, **kwargs)

def pytest_configure(config):
    PIL.Image.fromarray = fromarray

def pytest_unconfigure(config):  # the run is in-process: PIL is shared with later tests
    PIL.Image.fromarray = _fromarray
"""


def test_a_failure_while_drawing_the_report_fails_only_that_image(
    pytester: pytest.Pytester, make_qc
) -> None:
    qc = make_qc(3, root=pytester.path / "qc")
    labels = disks((64, 96), 8)
    write(qc.target / BAD, labels)
    write(qc.predictions / BAD, labels)
    write(qc.source / BAD, image_from(labels))
    pytester.makeconftest(BROKEN_DRAWING_CONFTEST)
    result = run_qc(pytester, qc, source=True)
    assert_only_bad_image_failed(
        result, pytester, f"{BAD}: store or draw failed (RuntimeError: the drawing library failed)"
    )


# --- point 12: the full-resolution image of a TIFF, never a thumbnail ---------------------


def test_a_thumbnail_stored_first_is_not_what_is_judged(pytester: pytest.Pytester, make_qc) -> None:
    """img01's prediction misses 4 of its 10 objects; both files start with the same 8 x 8
    thumbnail, on which it would be perfect. tp 6, fn 4, fp 0: f1 = 12 / 16 = 0.75."""
    qc = make_qc(3, root=pytester.path / "qc", dropped=(0, 4, 0))
    for folder in (qc.target, qc.predictions):
        full = tifffile.imread(folder / BAD)
        tifffile.imwrite(folder / BAD, disks((64, 128), 10)[::8, ::16])  # the thumbnail
        tifffile.imwrite(folder / BAD, full, append=True)
    result = run_qc(pytester, qc, limits="per_image:\n  f1: {min: 0.9}\n")
    output = output_of(result)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output
    result.stdout.fnmatch_lines([f"*{BAD}: f1 = 0.75 < min 0.9*"])
    with (pytester.path / "qc-output" / "metrics.csv").open(newline="") as table:
        row = next(r for r in csv.DictReader(table) if r["image"] == BAD)
    assert (row["true positive"], row["false negative"], row["false positive"]) == ("6", "4", "0")


def test_a_tiff_of_several_images_of_one_size_fails_naming_their_shapes(
    pytester: pytest.Pytester, make_qc
) -> None:
    qc = make_qc(3, root=pytester.path / "qc")
    labels = tifffile.imread(qc.target / BAD)
    for i in range(3):  # a stack saved as one TIFF image per plane
        tifffile.imwrite(qc.target / BAD, labels, append=i > 0)
    result = run_qc(pytester, qc)
    assert_only_bad_image_failed(
        result,
        pytester,
        f"{qc.target / BAD}: holds 3 images (TIFF series of shapes (64, 128), (64, 128), "
        "(64, 128)) and 3 of them share the largest size, so segqc cannot tell which one "
        "is the QC image; save one image (or one stack) per file",
    )


# --- point 13: source values the model cannot see; links to nothing ----------------------


def test_a_source_that_overflows_float32_fails_with_that_reason(
    pytester: pytest.Pytester, make_qc, tiny_model_dir: Path, tensorflow_ready: None
) -> None:
    qc = make_qc(3, root=pytester.path / "qc")
    huge = image_from(disks((64, 128), 10)).astype(np.float64) * 1e300  # float64 only
    write(qc.source / BAD, huge)
    result = run_qc(pytester, qc, model=tiny_model_dir)
    assert_only_bad_image_failed(
        result,
        pytester,
        f"{qc.source / BAD}: image values (from * to *, dtype float64) overflow float32 "
        "when normalised for the model; rescale the image (e.g. save it as float32 or uint16)",
    )


@pytest.mark.parametrize("folder", ["target", "predictions", "source"])
def test_a_link_to_nothing_is_reported_as_a_broken_link(
    folder: str, pytester: pytest.Pytester, make_qc
) -> None:
    qc = make_qc(3, root=pytester.path / "qc")
    link = pytester.path / "qc" / folder / BAD
    gone = pytester.path / "moved" / BAD  # where the file used to be
    link.unlink()
    link.symlink_to(gone)
    result = run_qc(pytester, qc, source=True)
    assert_only_bad_image_failed(
        result,
        pytester,
        f"{link}: broken link to {gone}: no such file; fix the link or put the file in its place",
    )


# --- point 14: a semantic mask where an instance label image belongs ---------------------


def test_a_semantic_prediction_is_flagged_on_its_image(pytester: pytest.Pytester, make_qc) -> None:
    qc = make_qc(3, root=pytester.path / "qc")
    semantic = (tifffile.imread(qc.predictions / BAD) > 0).astype(np.uint16)  # 10 disks, label 1
    write(qc.predictions / BAD, semantic)
    result = run_qc(pytester, qc)
    output = output_of(result)
    assert result.ret == pytest.ExitCode.OK, output  # a warning, not a failure
    note = (
        f"{qc.predictions / BAD}: prediction label 1 has 10 separate pieces: is this an "
        "instance label image? Each object needs its own label"
    )
    result.stdout.fnmatch_lines([f"NOTE {note}"])
    # pytest's own warnings summary names the image's test (the category, SegQcWarning,
    # is checked in tests/unit/test_bad_images.py: stardist, once imported, drops
    # categories from every warning's text).
    result.stdout.fnmatch_lines(["*warnings summary*", f"*test_image?{BAD}?", f"*: {note}"])
    assert result.parseoutcomes()["warnings"] == 1, output
    summary = json.loads((pytester.path / "qc-output" / "summary.json").read_text())
    notes = {image["name"]: image["notes"] for image in summary["images"]}
    assert notes == {"img00.tif": [], BAD: [note], "img02.tif": []}
