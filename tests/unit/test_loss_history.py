"""Reading training histories: ZeroCostDL4Mic's CSV variants and TensorBoard event files."""

import sys

import numpy as np
import pytest

from segqc.checks.loss.history import (
    HistoryError,
    find_history,
    read_csv_history,
    read_tensorboard_history,
    read_training_log,
)
from tests.unit.loss_logs import write_csv, write_events

LOSS = [1.5, 1.0, 0.8]
VAL = [1.6, 1.2, 1.1]
LR = [1e-3, 1e-3, 5e-4]


@pytest.mark.parametrize("lr_name", ["learning rate", "lr", "learning_rate"])
def test_zerocost_csv_with_any_learning_rate_name(tmp_path, lr_name):
    path = write_csv(
        tmp_path / "h.csv",
        {"loss": LOSS, "val_loss": VAL, lr_name: LR, "prob_loss": [0.5, 0.4, 0.3]},
    )
    history = read_csv_history(path)
    assert history.kind == "csv" and history.source == path
    assert history.epochs.tolist() == [1, 2, 3]
    assert history.loss.tolist() == LOSS
    assert history.val_loss.tolist() == VAL
    assert history.learning_rate.tolist() == LR
    assert list(history.extras) == ["prob_loss"]
    assert history.extras["prob_loss"].tolist() == [0.5, 0.4, 0.3]


def test_csv_column_order_case_blanks_and_bom_do_not_matter(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text(
        "\ufeffval_prob_loss, Learning Rate ,VAL_LOSS,epoch,Loss\n"
        "0.5,0.001,1.6,0,1.5\n0.4,0.001,1.2,1,1.0\n\n",
        encoding="utf-8",
    )
    history = read_csv_history(path)
    assert history.loss.tolist() == [1.5, 1.0]
    assert history.val_loss.tolist() == [1.6, 1.2]
    assert history.learning_rate.tolist() == [0.001, 0.001]
    assert history.epochs.tolist() == [1, 2]  # rows are epochs; the epoch column is ignored
    assert list(history.extras) == ["val_prob_loss"]


def test_csv_without_validation_and_with_nan_cells(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("loss\n1.0\nnan\n\n0.5\n", encoding="utf-8")
    history = read_csv_history(path)
    assert history.val_loss is None and history.learning_rate is None
    assert np.isnan(history.loss[1]) and history.loss[2] == 0.5


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty file"),
        ("val_loss,lr\n1,2\n", "no 'loss' column (columns: val_loss, lr)"),
        ("loss,val_loss\n", "no epochs recorded"),
        ("loss,val_loss\n1.0,0.9\n0.8,abc\n", ":3: column 'val_loss': not a number: 'abc'"),
        ("loss,val_loss\n1.0\n", ":2: 1 cells, the header has 2"),
    ],
)
def test_broken_csv_names_file_and_problem(tmp_path, text, problem):
    path = tmp_path / "h.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(HistoryError) as info:
        read_csv_history(path)
    assert str(info.value).startswith(str(path))
    assert problem in str(info.value)


def test_tensorboard_logs_as_keras_writes_them(tmp_path):
    logs = tmp_path / "logs"
    write_events(logs / "train", {"epoch_loss": LOSS, "epoch_learning_rate": LR, "other": [9]})
    write_events(logs / "validation", {"epoch_loss": VAL, "evaluation_loss_vs_iterations": [7]})
    history = read_tensorboard_history(logs)
    assert history.kind == "tensorboard" and history.source == logs
    assert history.epochs.tolist() == [1, 2, 3]
    assert history.loss.tolist() == pytest.approx(LOSS)  # float32 on disk
    assert history.val_loss.tolist() == pytest.approx(VAL)
    assert history.learning_rate.tolist() == pytest.approx(LR)


def test_tensorboard_logs_are_read_where_tensorflow_cannot_be_imported(tmp_path, monkeypatch):
    # A None entry in sys.modules makes `import tensorflow` raise ImportError, as on a
    # machine without TensorFlow (e.g. a --predictions run with --training-log).
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    logs = tmp_path / "logs"
    write_events(logs / "train", {"epoch_loss": LOSS})
    history = read_tensorboard_history(logs)
    assert history.n_epochs == 3
    assert history.loss.tolist() == pytest.approx(LOSS)


def test_tensorboard_simple_values_restarts_and_truncated_files(tmp_path):
    logs = tmp_path / "logs"
    write_events(logs / "train", {"epoch_loss": [2.0, 1.0, 0.9]}, simple_value=True,
                 name="events.out.tfevents.1")  # fmt: skip
    # a resumed run rewrote epoch 3 and added epoch 4; the later file wins
    later = write_events(logs / "train", {"epoch_loss": [0.75, 0.5]}, first_step=2,
                         simple_value=True, name="events.out.tfevents.2")  # fmt: skip
    with later.open("ab") as handle:  # a record still being written
        handle.write(b"\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00")
    history = read_tensorboard_history(logs)
    assert history.loss.tolist() == [2.0, 1.0, 0.75, 0.5]
    assert history.val_loss is None


def test_tensorboard_keeps_epochs_with_both_losses(tmp_path):
    logs = tmp_path / "logs"
    write_events(logs / "train", {"epoch_loss": [3.0, 2.0, 1.0]})
    write_events(logs / "validation", {"epoch_loss": [3.5, 2.5]})
    history = read_tensorboard_history(logs)
    assert history.epochs.tolist() == [1, 2]
    assert history.loss.tolist() == [3.0, 2.0]


def test_tensorboard_without_epoch_loss_or_with_garbage(tmp_path):
    write_events(tmp_path / "a" / "train", {"batch_loss": [1.0]})
    with pytest.raises(HistoryError, match=r"train: no 'epoch_loss' scalar"):
        read_tensorboard_history(tmp_path / "a")
    garbage = tmp_path / "b" / "train" / "events.out.tfevents.1"
    garbage.parent.mkdir(parents=True)
    garbage.write_bytes(
        b"\x05\x00\x00\x00\x00\x00\x00\x00" + b"\x00" * 4 + b"\xff" * 5 + b"\x00" * 4
    )
    with pytest.raises(HistoryError, match="not a TensorBoard event file"):
        read_tensorboard_history(tmp_path / "b")


def test_model_folder_prefers_the_csv_then_the_logs(tmp_path):
    model = tmp_path / "model"
    write_events(model / "logs" / "train", {"epoch_loss": [9.0, 8.0]})
    search = find_history(model)
    assert search.history.kind == "tensorboard" and search.history.loss.tolist() == [9, 8]
    write_csv(model / "Quality Control" / "training_evaluation.csv", {"loss": LOSS})
    search = find_history(model)
    assert search.history.kind == "csv" and search.history.loss.tolist() == LOSS


def test_model_folder_without_history_says_where_it_looked(tmp_path):
    search = find_history(tmp_path)
    assert search.history is None and search.error is None
    assert search.looked == (
        str(tmp_path / "Quality Control" / "training_evaluation.csv"),
        f"TensorBoard event files in {tmp_path / 'logs' / 'train'}",
    )


def test_broken_history_in_a_model_folder_is_an_error_not_a_miss(tmp_path):
    (tmp_path / "Quality Control").mkdir()
    (tmp_path / "Quality Control" / "training_evaluation.csv").write_text("lr\n1\n")
    search = find_history(tmp_path)
    assert search.history is None
    assert "no 'loss' column" in search.error


def test_training_log_accepts_csv_logs_or_model_folder(tmp_path):
    csv_path = write_csv(tmp_path / "m" / "Quality Control" / "training_evaluation.csv",
                         {"loss": LOSS})  # fmt: skip
    write_events(tmp_path / "m" / "logs" / "train", {"epoch_loss": [5.0, 4.0]})
    assert read_training_log(csv_path).history.kind == "csv"
    assert read_training_log(tmp_path / "m").history.kind == "csv"
    assert read_training_log(tmp_path / "m" / "logs").history.loss.tolist() == [5.0, 4.0]
    empty = tmp_path / "empty"
    empty.mkdir()
    search = read_training_log(empty)
    assert search.history is None
    assert search.error.startswith(f"{empty}: no training history here")


def test_plot_writes_a_png_with_two_panels(tmp_path):
    pytest.importorskip("matplotlib")
    from segqc.checks.loss.figure import plot_loss_curves

    path = write_csv(tmp_path / "h.csv", {"loss": LOSS, "val_loss": VAL, "prob_loss": LOSS})
    out = plot_loss_curves(read_csv_history(path), tmp_path / "out" / "loss_curve.png")
    assert out == tmp_path / "out" / "loss_curve.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    height, width = matplotlib.image.imread(out).shape[:2]
    assert width > 2 * height  # linear and log panels side by side
    assert list((tmp_path / "out").iterdir()) == [out]  # no temporary file left


def test_plot_is_redrawn_only_when_the_history_changes(tmp_path):
    pytest.importorskip("matplotlib")
    from segqc.checks.loss.figure import plot_loss_curves

    out = tmp_path / "loss_curve.png"
    first = write_csv(tmp_path / "a.csv", {"loss": LOSS, "val_loss": VAL})
    plot_loss_curves(read_csv_history(first), out)
    drawn = out.stat().st_mtime_ns
    out.touch()  # a later mtime marks the file: a redraw would replace it
    touched = out.stat().st_mtime_ns
    assert touched >= drawn
    plot_loss_curves(read_csv_history(first), out)
    assert out.stat().st_mtime_ns == touched  # same history: kept as it is

    changed = write_csv(tmp_path / "a.csv", {"loss": LOSS, "val_loss": [v * 1.5 for v in VAL]})
    plot_loss_curves(read_csv_history(changed), out)
    assert out.stat().st_mtime_ns != touched  # new history: drawn again

    out.write_bytes(b"not a png")  # a damaged file is redrawn, never trusted
    plot_loss_curves(read_csv_history(changed), out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
