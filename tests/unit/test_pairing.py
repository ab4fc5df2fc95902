"""Pairing of QC source images with ground-truth masks by file name."""

from pathlib import Path

import pytest

from segqc.data.pairing import PairingError, discover_pairs, find_prediction_files


def touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"x")


def test_pairs_by_name_sorted_and_extension_case_insensitive(tmp_path):
    touch(tmp_path / "s", "b.tif", "a.TIFF", "c.tiff", "notes.txt")
    touch(tmp_path / "t", "a.tif", "b.tif", "c.TIF")
    pairing = discover_pairs(tmp_path / "s", tmp_path / "t")
    assert [p.name for p in pairing.pairs] == ["a.TIFF", "b.tif", "c.tiff"]
    assert pairing.pairs[0].target == tmp_path / "t" / "a.tif"
    assert [p.name for p in pairing.ignored] == ["notes.txt"]


def test_every_problem_is_reported_at_once(tmp_path):
    touch(tmp_path / "s", "a.tif", "b.tif", "only_source.tif", "dup.tif", "dup.tiff")
    touch(tmp_path / "t", "a.tif", "b.tif", "only_target.tif", "dup.tif")
    with pytest.raises(PairingError) as caught:
        discover_pairs(tmp_path / "s", tmp_path / "t")
    message = str(caught.value)
    assert "only_source.tif" in message
    assert "only_target.tif" in message
    assert "dup.tif and dup.tiff differ only by extension" in message
    assert len(caught.value.problems) == 3


@pytest.mark.parametrize(
    ("make_source", "make_target", "expected"),
    [
        (False, True, "source folder .* does not exist"),
        (True, False, "target folder .* does not exist"),
        (False, False, "(?s)source folder .* does not exist.*target folder .* does not exist"),
    ],
)
def test_missing_folders(tmp_path, make_source, make_target, expected):
    if make_source:
        touch(tmp_path / "s", "a.tif")
    if make_target:
        touch(tmp_path / "t", "a.tif")
    with pytest.raises(PairingError, match=expected):
        discover_pairs(tmp_path / "s", tmp_path / "t")


def test_empty_folder(tmp_path):
    touch(tmp_path / "s", "readme.md")
    touch(tmp_path / "t", "a.tif")
    with pytest.raises(PairingError, match=r"contains no \.tif/\.tiff images"):
        discover_pairs(tmp_path / "s", tmp_path / "t")


def test_prediction_files_are_found_by_stem_and_missing_ones_listed(tmp_path):
    touch(tmp_path / "s", "a.tif", "b.tif", "c.tif")
    touch(tmp_path / "t", "a.tif", "b.tif", "c.tif")
    touch(tmp_path / "p", "a.tiff", "b.tif")
    pairs = discover_pairs(tmp_path / "s", tmp_path / "t").pairs
    with pytest.raises(PairingError, match=r"no prediction in .* for: c\.tif"):
        find_prediction_files(pairs, tmp_path / "p")
    touch(tmp_path / "p", "c.tif")
    files = find_prediction_files(pairs, tmp_path / "p")
    assert files["a.tif"].name == "a.tiff"
