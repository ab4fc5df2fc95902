"""The plugin at scale, as a user runs it: prediction cache, pytest-xdist, streaming.

Model-mode runs use a stand-in model folder (config.json, random weights bytes) and a
conftest that replaces ``StarDistPredictor.predict`` with a counting fake, so no
TensorFlow is needed: the fake labels ``image > 300`` (the disks of ``make_qc``) and
appends the image name to ``predict_calls.txt``. Expected metrics are those of
tests/test_plugin_predictions.py (10 disks per image, ``d`` dropped: tp = 10 - d).
"""

from __future__ import annotations

import csv
import gc
import json
import os
import weakref
from pathlib import Path

import numpy as np
import pytest
import tifffile

from segqc.xdist import (
    SharedEvaluator,
    outcome_from_dict,
    outcome_to_dict,
    received_outcome,
)
from segqc.data.pairing import QcPair
from segqc.predict.stardist import PredictionResult
from segqc.pipeline.evaluate import ImageOutcome, QcRun
from segqc.thresholds import bundled_thresholds_path, load_thresholds

from tests.helpers import OPTIONAL_SKIPPED

QC = ("--pyargs", "segqc.qc_tests")

FAKE_PREDICT = """
import numpy as np
from skimage.measure import label
from segqc.predict.stardist import PredictionResult, StarDistPredictor

def fake_predict(self, pair, image):
    self.device_name = "CPU (fake)"
    with open("predict_calls.txt", "a") as handle:
        handle.write(pair.name + "\\n")
    return PredictionResult(labels=label(image > 300).astype(np.int32), n_tiles=(1, 1))

real_predict = StarDistPredictor.predict
undo = [lambda: setattr(StarDistPredictor, "predict", real_predict)]

def pytest_configure(config):
    StarDistPredictor.predict = fake_predict

def pytest_unconfigure(config):  # in-process runs share segqc with the tests after them
    for step in undo:
        step()
"""


@pytest.fixture
def fake_model(pytester: pytest.Pytester) -> Path:
    folder = pytester.path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"n_dim": 2, "n_channel_in": 1}')
    (folder / "weights_best.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(256))
    (folder / "thresholds.json").write_text('{"prob": 0.5, "nms": 0.4}')
    pytester.makeconftest(FAKE_PREDICT)
    return folder


def summary(pytester: pytest.Pytester, output: str = "qc-output") -> dict:
    return json.loads((pytester.path / output / "summary.json").read_text())


def calls(pytester: pytest.Pytester) -> list[str]:
    path = pytester.path / "predict_calls.txt"
    return path.read_text().split() if path.exists() else []


def test_second_run_uses_the_cache_and_no_cache_bypasses_it(pytester, make_qc, fake_model):
    qc = make_qc(3, root=pytester.path / "qc")
    model = ("--model", str(fake_model), "--qc-source", str(qc.source))
    args = (*QC, *model, "--qc-target", str(qc.target))

    pytester.runpytest(*args).assert_outcomes(passed=5, skipped=OPTIONAL_SKIPPED)
    assert sorted(calls(pytester)) == ["img00.tif", "img01.tif", "img02.tif"]
    first = summary(pytester)
    assert [i["cached"] for i in first["images"]] == [False] * 3
    assert first["predictor"]["cache"] == str(pytester.path / "qc-output" / "cache")

    pytester.runpytest(*args).assert_outcomes(passed=5, skipped=OPTIONAL_SKIPPED)
    assert len(calls(pytester)) == 3  # nothing predicted again
    second = summary(pytester)
    assert [i["cached"] for i in second["images"]] == [True] * 3
    assert [i["metrics"] for i in second["images"]] == [i["metrics"] for i in first["images"]]
    assert second["images"][0]["metrics"]["tp"] == 10
    assert second["images"][0]["n_tiles"] == [1, 1]
    assert (pytester.path / "qc-output" / "predictions" / "img02.tif").is_file()

    pytester.runpytest(*args, "--no-cache").assert_outcomes(passed=5, skipped=OPTIONAL_SKIPPED)
    assert len(calls(pytester)) == 6
    assert [i["cached"] for i in summary(pytester)["images"]] == [False] * 3


COUNT_DRAWING = """  # after FAKE_PREDICT, whose pytest_unconfigure runs ``undo``
import segqc.report.render as render
import segqc.report.panels as visuals

def counted(module, name, what):
    original = getattr(module, name)

    def drawing(*args, **kwargs):
        with open("draw_calls.txt", "a") as handle:
            handle.write(what + "\\n")
        return original(*args, **kwargs)

    setattr(module, name, drawing)

    def uncounted():  # the modules may outlive this run
        setattr(module, name, original)

    undo.append(uncounted)

counted(visuals, "draw_visual", "panels")
counted(render, "accuracy_figure", "accuracy")
"""


def report_pictures(pytester: pytest.Pytester) -> list[str]:
    html = (pytester.path / "qc-output" / "report.html").read_text(encoding="utf-8")
    return [part.split('"', 1)[0] for part in html.split('src="data:image/')[1:]]


def test_second_run_draws_nothing_and_shows_the_same_pictures(pytester, make_qc, fake_model):
    pytester.makeconftest(FAKE_PREDICT + COUNT_DRAWING)
    qc = make_qc(3, root=pytester.path / "qc")
    args = (*QC, "--model", str(fake_model), "--qc-source", str(qc.source),
            "--qc-target", str(qc.target))  # fmt: skip
    drawn = pytester.path / "draw_calls.txt"

    pytester.runpytest(*args).assert_outcomes(passed=5, skipped=OPTIONAL_SKIPPED)
    assert sorted(drawn.read_text().split()) == ["accuracy", "panels", "panels", "panels"]
    first = report_pictures(pytester)
    assert len(first) == 1 + 3 * 4  # the accuracy figure, 4 panels per image

    drawn.unlink()
    pytester.runpytest(*args).assert_outcomes(passed=5, skipped=OPTIONAL_SKIPPED)
    assert not drawn.exists(), drawn.read_text()
    assert report_pictures(pytester) == first
    html = (pytester.path / "qc-output" / "report.html").read_text(encoding="utf-8")
    assert "none: every prediction came from the prediction cache" in html  # the device

    # A changed ground truth is a changed picture (and curve): drawn again, that one only.
    target = tifffile.imread(qc.target / "img01.tif")
    tifffile.imwrite(qc.target / "img01.tif", np.where(target == 1, 0, target))
    pytester.runpytest(*args)
    assert sorted(drawn.read_text().split()) == ["accuracy", "panels"]
    assert report_pictures(pytester) != first

    drawn.unlink()
    pytester.runpytest(*args, "--no-cache")
    assert sorted(drawn.read_text().split()) == ["accuracy", "panels", "panels", "panels"]


def test_changed_prediction_threshold_predicts_again(pytester, make_qc, fake_model):
    qc = make_qc(2, root=pytester.path / "qc")
    args = (*QC, "--model", str(fake_model), "--qc-source", str(qc.source),
            "--qc-target", str(qc.target))  # fmt: skip
    pytester.runpytest(*args)
    limits = pytester.path / "limits.yaml"
    limits.write_text("prediction:\n  prob_thresh: 0.6\n")
    pytester.runpytest(*args, "--thresholds", str(limits)).assert_outcomes(
        passed=2, skipped=2 + OPTIONAL_SKIPPED
    )
    assert len(calls(pytester)) == 4
    assert [i["cached"] for i in summary(pytester)["images"]] == [False, False]


def test_cache_folder_from_option_and_ini(pytester, make_qc, fake_model):
    qc = make_qc(1, root=pytester.path / "qc")
    args = (*QC, "--model", str(fake_model), "--qc-source", str(qc.source),
            "--qc-target", str(qc.target))  # fmt: skip
    pytester.runpytest(*args, "--qc-cache", "mine")
    assert len(list((pytester.path / "mine").rglob("*.tif"))) == 1
    assert not (pytester.path / "qc-output" / "cache").exists()
    pytester.makeini("[pytest]\nqc_cache = from_ini\n")
    pytester.runpytest(*args)
    assert len(list((pytester.path / "from_ini").rglob("*.tif"))) == 1


def test_unwritable_cache_folder_is_a_usage_error(pytester, make_qc, fake_model):
    qc = make_qc(1, root=pytester.path / "qc")
    (pytester.path / "blocker").write_text("a file, not a folder")
    result = pytester.runpytest(
        *QC, "--model", str(fake_model), "--qc-source", str(qc.source),
        "--qc-target", str(qc.target), "--qc-cache", str(pytester.path / "blocker"),
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: segqc: */blocker: cache folder is not writable*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_xdist_reports_every_image_exactly_once(pytester, make_qc, worker_path):
    dropped = (0, 4, 0, 2, 0, 0, 1, 0)
    qc = make_qc(len(dropped), dropped=dropped, root=pytester.path / "qc")
    limits = pytester.path / "limits.yaml"
    limits.write_text("per_image:\n  f1: {min: 0.7}\naggregate:\n  f1: {min: 0.8}\n")
    result = pytester.runpytest(
        *QC, "-n", "2", "--predictions", str(qc.predictions), "--qc-target", str(qc.target),
        "--thresholds", str(limits),
    )  # fmt: skip
    result.assert_outcomes(passed=len(dropped) + 1, skipped=1 + OPTIONAL_SKIPPED)
    result.stdout.fnmatch_lines([f"2 workers [[]{10 + OPTIONAL_SKIPPED} items[]]"])
    names = [f"img{i:02d}.tif" for i in range(len(dropped))]
    with open(pytester.path / "qc-output" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["image"] for row in rows] == names
    assert [int(row["false negative"]) for row in rows] == list(dropped)
    document = summary(pytester)
    assert document["complete"] is True and document["status"] == "passed"
    assert [i["name"] for i in document["images"]] == names
    assert document["qc"]["n_evaluated"] == len(dropped)
    pooled = document["aggregate"]["pooled"]
    assert (pooled["tp"], pooled["fn"]) == (80 - sum(dropped), sum(dropped))
    assert sum(v["scope"] == "per_image" for v in document["limits"]) == len(dropped)
    assert document["tests"] == {"passed": len(dropped) + 1, "skipped": 1 + OPTIONAL_SKIPPED}
    leftovers = [p.name for p in (pytester.path / "qc-output").iterdir()]
    assert not [name for name in leftovers if "spool" in name]
    assert {"metrics.csv", "summary.json"} <= set(leftovers)


def test_xdist_aggregate_at_judges_every_image_even_when_run_alone(pytester, make_qc, worker_path):
    # Pooled recall at IoU 0.7 is 26/30 = 0.867 over all three images (img01 misses 4 of
    # 10 disks) and 1.0, 0.8 or 0.6 over any part of them: only the whole set passes.
    qc = make_qc(3, dropped=(0, 4, 0), root=pytester.path / "qc")
    limits = pytester.path / "limits.yaml"
    limits.write_text("aggregate_at:\n  0.7: {recall: {min: 0.85, max: 0.9}}\n")
    result = pytester.runpytest(
        *QC, "-n", "1", "-k", "aggregate_at", "--predictions", str(qc.predictions),
        "--qc-target", str(qc.target), "--thresholds", str(limits),
    )  # fmt: skip
    result.assert_outcomes(passed=1)


def test_xdist_runs_whole_set_tests_after_the_per_image_tests(pytester, make_qc, worker_path):
    qc = make_qc(3, root=pytester.path / "qc")
    limits = pytester.path / "limits.yaml"
    limits.write_text("aggregate_at:\n  0.7: {recall: {min: 0.5}}\n")
    result = pytester.runpytest(
        *QC, "-n", "1", "-v", "--predictions", str(qc.predictions), "--qc-target",
        str(qc.target), "--thresholds", str(limits),
    )  # fmt: skip
    ran = [line.split("::")[-1].strip() for line in result.outlines if "[gw0]" in line]
    per_image = [i for i, name in enumerate(ran) if name.startswith("test_image[")]
    whole_set = [
        i
        for i, name in enumerate(ran)
        if name in ("test_aggregate_at", "test_aggregate", "test_image_mean")
    ]
    # test_accuracy_vs_iou.py is collected first, yet runs after every image's test
    assert len(per_image) == 3 and len(whole_set) == 3
    assert max(per_image) < min(whole_set)


def test_xdist_in_model_mode_reports_cached_flags(pytester, make_qc, fake_model, worker_path):
    qc = make_qc(4, root=pytester.path / "qc")
    args = (*QC, "-n", "2", "--model", str(fake_model), "--qc-source", str(qc.source),
            "--qc-target", str(qc.target))  # fmt: skip
    pytester.runpytest(*args).assert_outcomes(passed=6, skipped=OPTIONAL_SKIPPED)
    assert sorted(set(calls(pytester))) == [f"img{i:02d}.tif" for i in range(4)]
    # only the workers load the model: the device they predicted on reaches the controller
    assert summary(pytester)["predictor"]["device"] == "CPU (fake)"
    html = (pytester.path / "qc-output" / "report.html").read_text(encoding="utf-8")
    assert "CPU (fake)" in html
    pytester.runpytest(*args).assert_outcomes(passed=6, skipped=OPTIONAL_SKIPPED)
    document = summary(pytester)
    assert [i["cached"] for i in document["images"]] == [True] * 4
    assert document["complete"] is True


def _run(pairs: tuple[QcPair, ...], predictor: object, output: Path) -> QcRun:
    return QcRun(
        pairs=pairs,
        thresholds=load_thresholds(bundled_thresholds_path(), is_bundled_default=True),
        predictor=predictor,  # type: ignore[arg-type]
        output_dir=output,
    )


class FolderPredictor:
    """Reads ``make_qc`` predictions; counts calls and keeps weak references to results."""

    needs_source_image = False

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.calls: list[str] = []
        self.results: list[weakref.ref] = []

    def predict(self, pair: QcPair, image: np.ndarray | None) -> PredictionResult:
        import tifffile

        self.calls.append(pair.name)
        labels = tifffile.imread(self.folder / pair.name)
        self.results.append(weakref.ref(labels))
        return PredictionResult(labels=labels)

    def describe(self) -> dict:
        return {"kind": "test folder"}


def _pairs(qc) -> tuple[QcPair, ...]:
    return tuple(QcPair(p.name, None, p) for p in sorted(qc.target.iterdir()) if p.suffix == ".tif")


def test_workers_share_outcomes_through_the_spool(make_qc, tmp_path):
    qc = make_qc(4, dropped=(0, 3, 0, 1))
    pairs = _pairs(qc)
    spool = tmp_path / "spool"
    first = FolderPredictor(qc.predictions)
    worker_a = SharedEvaluator(_run(pairs, first, tmp_path), spool)
    worker_a.evaluate(pairs[1])
    worker_a.evaluate(pairs[3])
    assert len(worker_a.take_unsent()) == 2 and worker_a.take_unsent() == []

    second = FolderPredictor(qc.predictions)
    worker_b = SharedEvaluator(_run(pairs, second, tmp_path), spool)
    worker_b.evaluate_all()
    assert second.calls == ["img00.tif", "img02.tif"]  # the others came from the spool
    assert [o.scores.matching.fn for o in worker_b.run.outcomes] == [0, 3, 0, 1]
    messages = worker_b.take_unsent()
    assert messages == [{"spooled": "img00.tif"}, {"spooled": "img02.tif"}]
    # the controller reads them from the spool: the same outcomes
    controller = {p.name: p for p in pairs}
    received = [received_outcome(m, spool, controller) for m in messages]
    assert [o.scores for o in received] == [o.scores for o in worker_b.run.outcomes[::2]]


def test_without_a_spool_the_report_carries_the_whole_outcome(make_qc, tmp_path):
    qc = make_qc(1, dropped=(2,))
    pairs = _pairs(qc)
    blocked = tmp_path / "spool"
    blocked.write_text("a file where the spool folder should be")
    worker = SharedEvaluator(_run(pairs, FolderPredictor(qc.predictions), tmp_path), blocked)
    worker.evaluate_all()
    [message] = worker.take_unsent()
    assert message["pair"]["name"] == "img00.tif"
    outcome = received_outcome(message, None, {p.name: p for p in pairs})
    assert outcome.scores == worker.run.outcomes[0].scores and outcome.scores.matching.fn == 2


def test_damaged_spool_entry_is_evaluated_again(make_qc, tmp_path):
    qc = make_qc(1, dropped=(2,))
    pairs = _pairs(qc)
    spool = tmp_path / "spool"
    SharedEvaluator(_run(pairs, FolderPredictor(qc.predictions), tmp_path), spool).evaluate_all()
    for entry in spool.iterdir():
        entry.write_text('{"pair": ')
    again = FolderPredictor(qc.predictions)
    worker = SharedEvaluator(_run(pairs, again, tmp_path), spool)
    worker.evaluate_all()
    assert again.calls == ["img00.tif"] and worker.run.outcomes[0].scores.matching.fn == 2


def test_outcome_round_trips_through_a_dict(make_qc, tmp_path):
    qc = make_qc(2, dropped=(0, 4))
    pairs = _pairs(qc)
    run = _run(pairs, FolderPredictor(qc.predictions), tmp_path)
    for outcome in run.evaluate_all():
        data = json.loads(json.dumps(outcome_to_dict(outcome)))
        assert outcome_from_dict(data, pairs={p.name: p for p in pairs}) == outcome
    broken = ImageOutcome(pairs[0], error="target/img00.tif: not a TIFF", n_tiles=(2, 1))
    assert outcome_from_dict(outcome_to_dict(broken)) == broken


def test_run_reads_images_on_demand_and_keeps_only_metrics(make_qc, tmp_path, monkeypatch):
    import segqc.pipeline.evaluate

    qc = make_qc(3, dropped=(0, 1, 2))
    pairs = _pairs(qc)
    read: list[str] = []
    real_read = segqc.pipeline.evaluate.read_tiff

    def counting_read(path: Path) -> np.ndarray:
        read.append(path.name)
        return real_read(path)

    monkeypatch.setattr(segqc.pipeline.evaluate, "read_tiff", counting_read)
    predictor = FolderPredictor(qc.predictions)
    run = _run(pairs, predictor, tmp_path)
    run.evaluate(pairs[1])
    assert read == ["img01.tif"] and predictor.calls == ["img01.tif"]
    run.evaluate_all()
    gc.collect()
    assert [ref() for ref in predictor.results] == [None, None, None]  # predictions freed
    for outcome in run.outcomes:
        held = [v for v in vars(outcome).values() if isinstance(v, np.ndarray)]
        assert held == []


def test_demo_model_second_run_is_served_by_the_cache(tensorflow_ready, pytester):
    from conftest import DEMO2D, QC2D

    args = (*QC, "--model", str(DEMO2D), "--qc-source", str(QC2D / "source"),
            "--qc-target", str(QC2D / "target"), "--device", "cpu")  # fmt: skip
    pytester.runpytest(*args)
    first = summary(pytester)
    assert first["images"] and not any(i["cached"] for i in first["images"])
    pytester.runpytest(*args)
    second = summary(pytester)
    assert all(i["cached"] for i in second["images"])
    assert [i["metrics"] for i in second["images"]] == [i["metrics"] for i in first["images"]]
    assert [i["n_tiles"] for i in second["images"]] == [i["n_tiles"] for i in first["images"]]


def test_qc_processes_exit_without_collecting_their_garbage(
    pytester, make_qc, worker_path, monkeypatch
):
    """Every QC process (controller and xdist workers) freezes the garbage collector at
    interpreter exit: Python's final collections cost ~1 s once TensorFlow is loaded.
    An in-process run leaves the collector of its process as it was."""
    pytester.makeconftest(
        """
        import atexit, gc, os, pathlib

        if os.environ.get("EXIT_PROBE"):  # registered before segqc's handler: runs after
            path = pathlib.Path(f"exit-{os.getpid()}.txt").resolve()
            atexit.register(lambda: path.write_text(str(gc.get_freeze_count())))
        """
    )
    qc = make_qc(2, root=pytester.path / "qc")
    args = (*QC, "--predictions", str(qc.predictions), "--qc-target", str(qc.target))
    monkeypatch.setenv("EXIT_PROBE", "1")
    assert pytester.runpytest_subprocess(*args, "-n", "1").ret == pytest.ExitCode.OK
    counts = [int(p.read_text()) for p in pytester.path.glob("exit-*.txt")]
    assert len(counts) == 2 and min(counts) > 1000  # the controller and its worker

    monkeypatch.delenv("EXIT_PROBE")
    assert pytester.runpytest(*args).ret == pytest.ExitCode.OK  # in this process
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize(("workers", "imported"), [("1", True), ("0", False)])
def test_xdist_controller_imports_the_drawing_library_while_workers_test(
    pytester, make_qc, worker_path, workers, imported
):
    """The controller runs no test; it imports matplotlib's figure module before the
    session ends (a new process, so nothing else imported it), but only once the workers
    run: meanwhile it would slow the controller starting them. The workers draw every
    image's panels without matplotlib or scikit-image's morphology (~0.3 s each)."""
    pytester.makeconftest(
        """
        import pathlib, sys, threading, pytest

        def warming_up():
            return [t for t in threading.enumerate() if t.name == "segqc-warm-up"]

        @pytest.hookimpl(wrapper=True)
        def pytest_sessionstart(session):  # xdist starts its workers here: not meanwhile
            result = yield
            if not hasattr(session.config, "workerinput"):  # the controller
                pathlib.Path("at-start.txt").write_text(str("matplotlib" in sys.modules))
            return result

        @pytest.hookimpl(wrapper=True)
        def pytest_sessionfinish(session):  # before every other sessionfinish (the report's)
            if not hasattr(session.config, "workerinput"):  # the controller
                for thread in warming_up():
                    thread.join()
                loaded = "matplotlib.figure" in sys.modules
                pathlib.Path("loaded.txt").write_text(str(loaded))
            else:
                drawing = [m for m in ("matplotlib", "skimage.morphology") if m in sys.modules]
                pathlib.Path("worker.txt").write_text(" ".join(drawing) or "neither")
            return (yield)
        """
    )
    qc = make_qc(2, root=pytester.path / "qc")
    result = pytester.runpytest_subprocess(
        *QC, "-n", workers, "--predictions", str(qc.predictions), "--qc-target", str(qc.target)
    )
    assert result.ret == pytest.ExitCode.OK
    assert (pytester.path / "loaded.txt").read_text() == str(imported)
    assert (pytester.path / "at-start.txt").read_text() == "False"
    if workers != "0":
        assert (pytester.path / "worker.txt").read_text() == "neither"


def test_xdist_baseline_model_comparison_reaches_summary_json(
    pytester, make_qc, fake_model, worker_path
):
    """With --baseline-model the workers evaluate the released model too; they hand its
    outcomes to the controller, whose summary.json compares as a run without xdist."""
    qc = make_qc(4, dropped=(0, 3, 0, 0), root=pytester.path / "qc")
    released = pytester.path / "released"
    released.mkdir()
    for path in fake_model.iterdir():
        (released / path.name).write_bytes(path.read_bytes())
    args = (*QC, "--model", str(fake_model), "--baseline-model", str(released),
            "--qc-source", str(qc.source), "--qc-target", str(qc.target))  # fmt: skip
    tables = {}
    for workers in ("0", "2"):
        result = pytester.runpytest(*args, "-n", workers, "--qc-output", f"out-n{workers}")
        assert result.ret == pytest.ExitCode.OK
        document = json.loads((pytester.path / f"out-n{workers}" / "summary.json").read_text())
        tables[workers] = document["regression"]
    assert tables["2"] is not None
    assert tables["2"] == tables["0"]
    assert tables["2"]["aggregate"]["tp"]["old"] == 40  # the released model found all 40
