"""Fixtures shared by both tiers of segqc's own tests (builders are in tests/helpers.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import QcFolders, write_qc

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    # pytest-benchmark, where installed, warns in every pytester run with -n that it
    # turns itself off under xdist; these tests never benchmark.
    config.addinivalue_line(
        "filterwarnings", "ignore:Benchmarks are automatically disabled:pytest.PytestWarning"
    )


@pytest.fixture
def make_qc(tmp_path: Path) -> Callable[..., QcFolders]:
    """Write QC folders under tmp_path (see :func:`tests.helpers.write_qc`)."""

    def make(n_images: int = 3, *, root: Path | None = None, **kwargs: object) -> QcFolders:
        return write_qc(root or tmp_path, n_images, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def thresholds_file(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], Path]:
    """Write a thresholds.yaml with the given text and return its path.

    In a pytester test the file goes into the project pytester runs in, as a user's
    would: a file elsewhere, given as ``--thresholds PATH``, would move pytest's rootdir
    (see segqc.invocation).
    """
    folder = (
        request.getfixturevalue("pytester").path if "pytester" in request.fixturenames else tmp_path
    )

    def write(text: str, name: str = "limits.yaml") -> Path:
        path = folder / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
