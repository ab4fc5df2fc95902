"""Hostile configuration files, the way a user meets them: exit code 4 and one line.

``pytest --thresholds <a FIFO>`` must not wait forever, ``--thresholds /dev/zero`` must
not fill the memory, a key given twice or an alias bomb in thresholds.yaml, a weights
file that is a folder or a config.json nested 100,000 levels deep must each end the run
at configure time with one ``ERROR:`` line naming the file: no traceback, no
INTERNALERROR. The messages themselves are checked whole in
tests/unit/test_config_files.py.

Threshold cases run in ``--predictions`` mode; model cases stop while inspecting the
model folder, before TensorFlow is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import ALIAS_BOMB, HDF5_SIGNATURE, QcFolders, fifo_at

QC = ("--pyargs", "segqc.qc_tests")


def assert_usage_error(result: pytest.RunResult, *fragments: str) -> None:
    """Exit code 4 and exactly one error line, holding every fragment, nothing else."""
    output = result.stdout.str() + "\n" + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    assert "Traceback" not in output and "INTERNALERROR" not in output, output
    lines = [line for line in result.stderr.lines if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("ERROR: segqc: "), output
    assert all(fragment in lines[0] for fragment in fragments), output


def run_with_thresholds(pytester: pytest.Pytester, qc: QcFolders, path: Path) -> pytest.RunResult:
    return pytester.runpytest(
        *QC,
        f"--predictions={qc.predictions}",
        f"--qc-target={qc.target}",
        f"--thresholds={path}",
    )  # fmt: skip


@pytest.fixture
def qc(pytester: pytest.Pytester, make_qc: Callable[..., QcFolders]) -> QcFolders:
    return make_qc(2, root=pytester.path / "qc")


def test_thresholds_from_a_named_pipe(pytester, qc):
    with fifo_at(pytester.path / "limits.yaml") as path:
        result = run_with_thresholds(pytester, qc, path)
    assert_usage_error(result, f"{path}: is a named pipe (FIFO), not a thresholds file")


def test_thresholds_from_dev_zero(pytester, qc):
    result = run_with_thresholds(pytester, qc, Path("/dev/zero"))
    assert_usage_error(result, "/dev/zero: is a character device, not a thresholds file")


def test_thresholds_with_a_key_given_twice(pytester, qc):
    path = pytester.path / "limits.yaml"
    path.write_text("per_image:\n  f1:\n    min: 0.99\n    min: 0.5\n")
    result = run_with_thresholds(pytester, qc, path)
    assert_usage_error(result, f"{path}:4: duplicate key 'min' (also at line 3)")


def test_thresholds_that_are_an_alias_bomb(pytester, qc):
    path = pytester.path / "limits.yaml"
    path.write_text(ALIAS_BOMB)
    result = run_with_thresholds(pytester, qc, path)
    assert_usage_error(result, f"{path}: more than 10,000 YAML nodes once aliases")


def broken_model(base: Path) -> Path:
    folder = base / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"n_dim": 2, "n_channel_in": 1}')
    (folder / "weights_best.h5").write_bytes(HDF5_SIGNATURE + bytes(64))
    return folder


def run_with_model(pytester: pytest.Pytester, qc: QcFolders, model: Path) -> pytest.RunResult:
    return pytester.runpytest(
        *QC,
        f"--model={model}",
        f"--qc-source={qc.source}",
        f"--qc-target={qc.target}",
    )  # fmt: skip


def test_weights_that_are_a_folder(pytester, qc):
    model = broken_model(pytester.path)
    weights = model / "weights_best.h5"
    weights.unlink()
    weights.mkdir()
    result = run_with_model(pytester, qc, model)
    assert_usage_error(result, f"{weights}: is a folder, not a weights file")


def test_a_config_json_nested_100000_levels_deep(pytester, qc):
    model = broken_model(pytester.path)
    (model / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    result = run_with_model(pytester, qc, model)
    assert_usage_error(
        result, f"{model / 'config.json'}: lists or objects nested more than 100 levels deep"
    )


def test_a_rootdir_thresholds_yaml_that_is_not_a_file_is_refused_not_replaced(pytester, qc):
    """A thresholds.yaml in the rootdir is the user's limits: if it cannot be read, the
    run stops, rather than gating with segqc's bundled defaults."""
    (pytester.path / "thresholds.yaml").mkdir()
    result = pytester.runpytest(*QC, f"--predictions={qc.predictions}", f"--qc-target={qc.target}")
    assert_usage_error(result, f"{pytester.path / 'thresholds.yaml'}: is a folder")
