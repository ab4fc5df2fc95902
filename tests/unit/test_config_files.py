"""Hostile or broken configuration files: one readable error, never a hang or a traceback.

Every file segqc reads from a user (thresholds.yaml, a model's config.json and
thresholds.json, a baseline, a ``--qc-groups`` CSV) must be a regular file of at most
1 MiB, nested at most 100 levels deep; thresholds.yaml must also have no key given twice
and must not expand past 10,000 nodes through its aliases. Each problem is one line
naming the file, raised as the reader's own error type (which the plugin turns into exit
code 4). Messages are compared whole: they are what a user reads.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from segqc.checks.regression.baseline import BaselineError, read_baseline
from segqc.checks.subgroups.grouping import GroupsFileError, read_groups_file
from segqc.predict.model_folder import ModelFolderError, inspect_model_folder
from segqc.thresholds import ThresholdsError, load_thresholds
from tests.helpers import ALIAS_BOMB, HDF5_SIGNATURE, fifo_at

MIB = 1 << 20
REGULAR_ONLY = "segqc reads only regular files"

LOOP = os.strerror(errno.ELOOP)


def link_loop(path: Path) -> Path:
    """``path`` -> ``path.other`` -> ``path``: opening either fails with ELOOP."""
    other = path.with_name(path.name + ".other")
    path.symlink_to(other.name)
    other.symlink_to(path.name)
    return path


def nested_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def error_of(excinfo: pytest.ExceptionInfo[Exception]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message  # one line
    return message


# --- thresholds.yaml -----------------------------------------------------------------


def load_error(path: Path) -> str:
    with pytest.raises(ThresholdsError) as excinfo:
        load_thresholds(path)
    return error_of(excinfo)


def test_thresholds_larger_than_one_mib_are_refused(tmp_path):
    path = tmp_path / "limits.yaml"
    path.write_text("per_image:\n  f1: {min: 0.7}\n" + "#" * MIB)
    assert load_error(path) == (
        f"{path}: larger than 1 MiB, the most segqc reads from a thresholds file; "
        "check that this is the right file"
    )


def test_a_huge_sparse_thresholds_file_is_refused_without_reading_it(tmp_path):
    # 64 GiB of zeros that take no disk: only the first MiB and a byte are ever read.
    path = tmp_path / "limits.yaml"
    with path.open("wb") as handle:
        handle.truncate(64 << 30)
    assert load_error(path).startswith(f"{path}: larger than 1 MiB")


def test_thresholds_from_a_named_pipe_are_refused_without_waiting_for_a_writer(tmp_path):
    with fifo_at(tmp_path / "limits.yaml") as path:
        message = load_error(path)
    assert message == (f"{path}: is a named pipe (FIFO), not a thresholds file; {REGULAR_ONLY}")


def test_thresholds_from_dev_zero_are_refused_without_reading_it():
    assert load_error(Path("/dev/zero")) == (
        f"/dev/zero: is a character device, not a thresholds file; {REGULAR_ONLY}"
    )


def test_thresholds_that_are_a_folder_are_refused(tmp_path):
    assert load_error(tmp_path) == f"{tmp_path}: is a folder, not a thresholds file; {REGULAR_ONLY}"


def test_thresholds_behind_a_symbolic_link_loop_are_refused(tmp_path):
    path = link_loop(tmp_path / "limits.yaml")
    assert load_error(path) == (f"{path}: cannot open the thresholds file ({LOOP})")


def test_thresholds_that_are_not_utf8_are_refused(tmp_path):
    path = tmp_path / "limits.yaml"
    path.write_bytes(b"per_image:\n  f1: {min: 0.7} # \xe9t\xe9\n")
    assert load_error(path) == (
        f"{path}:2: not UTF-8 text (invalid continuation byte); save the thresholds file as UTF-8"
    )


@pytest.mark.parametrize(
    "text",
    [
        "per_image: " + "[" * 5000 + "]" * 5000 + "\n",
        "per_image: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n",
        "per_image:\n  " + "- " * 5000 + "1\n",  # a list of a list of a list...
    ],
    ids=["flow-lists", "flow-mappings", "block-lists"],
)
def test_thresholds_nested_5000_levels_deep_are_refused(tmp_path, text):
    path = tmp_path / "limits.yaml"
    path.write_text(text)
    line = 1 if text.startswith("per_image: ") else 2
    assert load_error(path) == (
        f"{path}:{line}: lists or mappings nested more than 100 levels deep; "
        "a thresholds file nests three or four"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            # the case that matters: the stricter limit vanishes without a word
            "per_image:\n  f1:\n    min: 0.99\n    level: fail\n    min: 0.5\n",
            ":5: duplicate key 'min' (also at line 3)",
        ),
        (
            "per_image:\n  f1: {min: 0.9}\naggregate:\n  f1: {min: 0.8}\n"
            "per_image:\n  recall: {min: 0.5}\n",
            ":5: duplicate key 'per_image' (also at line 1)",
        ),
        (
            "per_image: {f1: {min: 0.9}, recall: {min: 0.8}, f1: {min: 0.1}}\n",
            ":1: duplicate key 'f1' (also at line 1)",
        ),
        (
            # two spellings of one IoU threshold are one key of the parsed mapping
            "aggregate_at:\n  0.7: {f1: {min: 0.6}}\n  0.70: {f1: {min: 0.1}}\n",
            ":3: duplicate key '0.70' (also at line 2)",
        ),
    ],
    ids=["limit", "section", "flow-mapping", "iou-threshold"],
)
def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path, text, message):
    path = tmp_path / "limits.yaml"
    path.write_text(text)
    assert load_error(path) == (
        f"{path}{message}; YAML would keep only the last value, so remove one of them"
    )


def test_an_alias_bomb_is_refused_before_it_is_expanded(tmp_path):
    path = tmp_path / "limits.yaml"
    path.write_text(ALIAS_BOMB)
    assert load_error(path) == (
        f"{path}: more than 10,000 YAML nodes once aliases (*name) are expanded, the most "
        "segqc accepts (a thresholds file has a few hundred); an alias bomb? Write the "
        "limits out instead"
    )


def test_a_recursive_alias_is_refused(tmp_path):
    path = tmp_path / "limits.yaml"
    path.write_text("per_image:\n  f1: {min: 0.7}\nimage_mean: &loop\n  - *loop\n")
    assert load_error(path) == (
        f"{path}:3: this list or mapping contains an alias (*name) of itself; "
        "thresholds cannot be recursive"
    )


def test_anchors_aliases_and_merges_used_normally_still_work(tmp_path):
    path = tmp_path / "limits.yaml"
    path.write_text(
        "per_image:\n"
        "  f1: &strict {min: 0.8}\n"
        "  recall: *strict\n"
        "aggregate:\n"
        "  f1: *strict\n"
        "  precision:\n"
        "    <<: *strict\n"
        "    min: 0.6\n"  # overrides the merged min: not a duplicate
        "    level: warn\n"
    )
    thresholds = load_thresholds(path).thresholds
    assert thresholds.limits("per_image")["f1"].min == 0.8
    assert thresholds.limits("per_image")["recall"].min == 0.8
    assert thresholds.limits("aggregate")["f1"].min == 0.8
    precision = thresholds.limits("aggregate")["precision"]
    assert (precision.min, precision.level) == (0.6, "warn")


def test_only_safe_load_constructors_are_available(tmp_path):
    path = tmp_path / "limits.yaml"
    path.write_text("per_image: !!python/object/apply:os.getcwd []\n")
    assert "could not determine a constructor for the tag" in load_error(path)


# --- the model folder --------------------------------------------------------------


def model_folder(base: Path, *, config: str | None = None) -> Path:
    """A model folder inspect_model_folder accepts: config.json, HDF5-signed weights."""
    folder = base / "model"
    folder.mkdir()
    (folder / "config.json").write_text(config or '{"n_dim": 2, "n_channel_in": 1}')
    (folder / "weights_best.h5").write_bytes(HDF5_SIGNATURE + bytes(64))
    return folder


def inspect_error(folder: Path) -> str:
    with pytest.raises(ModelFolderError) as excinfo:
        inspect_model_folder(folder)
    return error_of(excinfo)


def test_a_valid_model_folder_is_still_accepted(tmp_path):
    folder = model_folder(tmp_path)
    (folder / "thresholds.json").write_text('{"prob": 0.4, "nms": 0.3}')
    described = inspect_model_folder(folder)
    assert described.weights == folder / "weights_best.h5"
    assert described.thresholds == {"prob": 0.4, "nms": 0.3}


def test_weights_reached_through_a_symbolic_link_are_accepted(tmp_path):
    folder = model_folder(tmp_path)
    (folder / "weights_best.h5").rename(tmp_path / "elsewhere.h5")
    (folder / "weights_best.h5").symlink_to(tmp_path / "elsewhere.h5")
    assert inspect_model_folder(folder).weights == folder / "weights_best.h5"


def test_weights_that_are_a_folder_are_refused(tmp_path):
    folder = model_folder(tmp_path)
    weights = folder / "weights_best.h5"
    weights.unlink()
    weights.mkdir()
    assert inspect_error(folder) == f"{weights}: is a folder, not a weights file; {REGULAR_ONLY}"


def test_weights_best_that_is_a_folder_is_not_silently_replaced_by_weights_last(tmp_path):
    folder = model_folder(tmp_path)
    (folder / "weights_best.h5").rename(folder / "weights_last.h5")
    (folder / "weights_best.h5").mkdir()
    assert "weights_best.h5: is a folder, not a weights file" in inspect_error(folder)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("weights_best.h5", f"cannot open the weights file ({LOOP})"),
        # one of the *.h5 files the newest is chosen from
        (
            "other.h5",
            f"cannot read the weights file ({LOOP}); remove it or copy the model folder again",
        ),
    ],
)
def test_weights_behind_a_symbolic_link_loop_are_refused(tmp_path, name, problem):
    folder = model_folder(tmp_path)
    (folder / "weights_best.h5").unlink()
    weights = link_loop(folder / name)
    assert inspect_error(folder) == f"{weights}: {problem}"


def test_weights_that_are_a_named_pipe_are_refused_without_waiting(tmp_path):
    folder = model_folder(tmp_path)
    (folder / "weights_best.h5").unlink()
    with fifo_at(folder / "weights_best.h5") as weights:
        message = inspect_error(folder)
    assert message == f"{weights}: is a named pipe (FIFO), not a weights file; {REGULAR_ONLY}"


@pytest.mark.parametrize("depth", [100_000, 500])
def test_a_config_json_nested_too_deep_is_refused(tmp_path, depth):
    # 100,000 levels overflow the JSON parser; 500 parse, but are refused all the same
    # (writing such a value out again would overflow the stack later).
    folder = model_folder(tmp_path, config='{"n_dim": 2, "x": ' + nested_json(depth) + "}")
    assert inspect_error(folder) == (
        f"{folder / 'config.json'}: lists or objects nested more than 100 levels deep; "
        "this is not a file segqc or StarDist wrote"
    )


@pytest.mark.parametrize("name", ["config.json", "thresholds.json"])
def test_model_json_files_larger_than_one_mib_are_refused(tmp_path, name):
    folder = model_folder(tmp_path)
    (folder / name).write_text('{"n_dim": 2, "prob": 0.5, "nms": 0.4}' + " " * MIB)
    what = "model config" if name == "config.json" else "model thresholds file"
    assert inspect_error(folder) == (
        f"{folder / name}: larger than 1 MiB, the most segqc reads from a {what}; "
        "check that this is the right file"
    )


def test_a_thresholds_json_nested_too_deep_is_refused(tmp_path):
    folder = model_folder(tmp_path)
    (folder / "thresholds.json").write_text(nested_json(100_000))
    assert "thresholds.json: lists or objects nested more than 100 levels" in inspect_error(folder)


@pytest.mark.parametrize(
    ("name", "what"),
    [("config.json", "model config"), ("thresholds.json", "model thresholds file")],
)
def test_model_json_files_that_are_not_regular_files_are_refused(tmp_path, name, what):
    folder = model_folder(tmp_path)
    path = folder / name
    path.unlink(missing_ok=True)
    path.mkdir()
    assert inspect_error(folder) == f"{path}: is a folder, not a {what}; {REGULAR_ONLY}"


def test_a_config_json_that_is_a_named_pipe_is_refused_without_waiting(tmp_path):
    folder = model_folder(tmp_path)
    (folder / "config.json").unlink()
    with fifo_at(folder / "config.json") as path:
        message = inspect_error(folder)
    assert message == f"{path}: is a named pipe (FIFO), not a model config; {REGULAR_ONLY}"


# --- the baseline file ---------------------------------------------------------------


def baseline_error(path: Path) -> str:
    with pytest.raises(BaselineError) as excinfo:
        read_baseline(path)
    return error_of(excinfo)


def test_a_baseline_larger_than_one_mib_is_refused(tmp_path):
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({"schema": "segqc-baseline"}) + " " * MIB)
    assert baseline_error(path) == (
        f"{path}: larger than 1 MiB, the most segqc reads from a baseline file; "
        "check that this is the right file"
    )


@pytest.mark.parametrize("depth", [100_000, 500])
def test_a_baseline_nested_too_deep_is_refused(tmp_path, depth):
    path = tmp_path / "baseline.json"
    path.write_text('{"schema": "segqc-baseline", "model": {"path": ' + nested_json(depth) + "}}")
    assert baseline_error(path) == (
        f"{path}: lists or objects nested more than 100 levels deep; "
        "this is not a file segqc or StarDist wrote"
    )


def test_a_baseline_that_is_a_named_pipe_is_refused_without_waiting(tmp_path):
    with fifo_at(tmp_path / "baseline.json") as path:
        message = baseline_error(path)
    assert message == f"{path}: is a named pipe (FIFO), not a baseline file; {REGULAR_ONLY}"


def test_a_baseline_that_is_a_folder_is_refused(tmp_path):
    assert baseline_error(tmp_path) == (
        f"{tmp_path}: is a folder, not a baseline file; {REGULAR_ONLY}"
    )


# --- the --qc-groups CSV -------------------------------------------------------------


def groups_error(path: Path) -> str:
    with pytest.raises(GroupsFileError) as excinfo:
        read_groups_file(path, ["a.tif"])
    return error_of(excinfo)


def test_a_groups_file_larger_than_one_mib_is_refused(tmp_path):
    path = tmp_path / "groups.csv"
    path.write_text("image,group\na.tif,left\n" + "\n" * MIB)
    assert groups_error(path) == (
        f"{path}: larger than 1 MiB, the most segqc reads from a groups file; "
        "check that this is the right file"
    )


def test_a_groups_file_of_exactly_one_mib_is_read(tmp_path):
    path = tmp_path / "groups.csv"
    head = "image,group\na.tif,left\n"
    path.write_text(head + "\n" * (MIB - len(head)))
    assert path.stat().st_size == MIB
    assert read_groups_file(path, ["a.tif"]) == {"a.tif": "left"}


def test_a_groups_file_that_is_a_named_pipe_is_refused_without_waiting(tmp_path):
    with fifo_at(tmp_path / "groups.csv") as path:
        message = groups_error(path)
    assert message == f"{path}: is a named pipe (FIFO), not a groups file; {REGULAR_ONLY}"


def test_a_groups_file_that_is_a_folder_is_refused(tmp_path):
    assert groups_error(tmp_path) == f"{tmp_path}: is a folder, not a groups file; {REGULAR_ONLY}"


def test_a_groups_file_with_a_byte_order_mark_is_still_read(tmp_path):
    path = tmp_path / "groups.csv"
    path.write_bytes(b"\xef\xbb\xbfimage,group\r\na.tif,left\r\n")
    assert read_groups_file(path, ["a.tif"]) == {"a.tif": "left"}
