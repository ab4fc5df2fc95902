"""segqc's own hooks, for conftest.py files and plugins (added by :mod:`segqc.generalisation`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

__all__ = ["pytest_segqc_make_predictor"]


@pytest.hookspec(firstresult=True)
def pytest_segqc_make_predictor(config: pytest.Config, model_dir: Path) -> Any:
    """Return a :class:`segqc.prediction.Predictor` for ``--model DIR``, or None.

    Called at configure time, before segqc inspects the folder as a StarDist model, so a
    plugin can test another kind of model (or a test double) with the same QC suite.
    The first non-None result wins; None keeps segqc's StarDist predictor.
    """
