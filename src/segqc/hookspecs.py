"""segqc's own hooks, for conftest.py files and plugins.

Registered by :mod:`segqc.plugin` (``pytest_addhooks``). segqc's checks use the same
hooks as any plugin would: each adds its summary.json section through
:func:`pytest_segqc_summary_section`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from segqc.session import QcSession

__all__ = [
    "pytest_segqc_make_predictor",
    "pytest_segqc_session_finish",
    "pytest_segqc_summary_section",
]


@pytest.hookspec(firstresult=True)
def pytest_segqc_make_predictor(config: pytest.Config, model_dir: Path, role: str) -> Any:
    """Return a :class:`segqc.predict.Predictor` for a model folder, or None.

    Called at configure time for ``--model DIR`` (``role="model"``), for
    ``--baseline-model DIR`` (``role="baseline"``) and, with ``--compare-device``, for
    the second predictor of the model under test (``role="compare"``, ``model_dir`` the
    ``--model`` folder), before segqc inspects the folder as a StarDist model, so a
    plugin can test another kind of model (or a test double) with the same QC suite. The
    first non-None result wins; None keeps segqc's StarDist predictor.
    """


@pytest.hookspec
def pytest_segqc_session_finish(session: QcSession) -> list[str] | None:
    """Called once, by the process that writes the outputs, when every test has run and
    at least one image was evaluated.

    Every image outcome that will ever reach this process is in ``session``; nothing is
    written yet. segqc's checks finish their work here (the baseline file of
    ``--update-baseline``, the loss figure, the worst images' panels); summary.json is
    built right after. Return problems that must fail the session (exit code 1), one
    line each, or None.
    """


@pytest.hookspec
def pytest_segqc_summary_section(session: QcSession) -> dict[str, Any] | None:
    """Return top-level sections to add to summary.json, as ``{key: JSON-ready value}``.

    Called once per session, after :func:`pytest_segqc_session_finish`. segqc's own
    sections (``loss_curve``, ``statistics``, ``regression``, ``robustness``,
    ``leakage``, ``subgroups``, ``device_agreement``) come in a fixed order; others
    follow in the order of their keys. A key that segqc itself writes cannot be replaced.
    """
