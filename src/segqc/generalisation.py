"""Pytest wiring of the robustness, leakage and subgroup checks.

Registered by :mod:`segqc.plugin` next to it. Adds ``--robustness``,
``--training-data`` and ``--qc-groups`` (and their ini keys) to the segqc option group,
generates the tests of ``qc_tests/test_robustness.py``, ``test_leakage.py`` and
``test_subgroups.py`` and provides their fixtures, and adds the ``robustness``,
``leakage`` and ``subgroups`` sections to summary.json (``QcRun.summary_sections``).
Checks that were not asked for generate no tests (their test functions are deselected).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from segqc.distributed import from_worker, send_to_controller
from segqc.leakage import LeakageReport, find_leaks, list_training_images
from segqc.pairing import QcPair
from segqc.robustness import Perturbation, RobustnessResult, RobustnessRunner
from segqc.session import ImageOutcome, QcRun
from segqc.subgroups import (
    GroupOutcome,
    GroupsFileError,
    SizeBinOutcome,
    image_group_outcomes,
    read_groups_file,
    size_bin_outcomes,
)
from segqc.thresholds import RobustnessSettings

__all__ = [
    "groups_setting",
    "qc_image_group",
    "qc_leakage",
    "qc_robustness",
    "qc_size_bin",
]

_STATE = pytest.StashKey["ChecksState"]()
_INACTIVE = "segqc_inactive_check"
_ROBUSTNESS_KEY = "segqc_robustness"


@dataclass
class ChecksState:
    """What the three checks need for one session, and what they found."""

    run: QcRun
    robustness: RobustnessRunner | None = None
    robustness_skip: str | None = None
    training_dir: Path | None = None
    leakage: LeakageReport | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def size_bins(self) -> list[SizeBinOutcome]:
        """Size-bin outcomes over the images evaluated so far ([] when not configured)."""
        settings = self.run.thresholds.thresholds.subgroups.object_size
        return [] if settings is None else size_bin_outcomes(self.run.outcomes, settings)

    def groups(self) -> list[GroupOutcome]:
        """Image-group outcomes over the images evaluated so far."""
        settings = self.run.thresholds.thresholds.subgroups.image_groups
        return image_group_outcomes(self.run.outcomes, settings)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Add ``pytest_segqc_make_predictor`` (see :mod:`segqc.hookspecs`)."""
    from segqc import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the three checks' options to the segqc group."""
    group = parser.getgroup("segqc", "segqc: quality control of segmentation models")
    group.addoption(
        "--robustness",
        dest="qc_robustness",
        action="store_true",
        default=None,
        help="predict perturbed copies of each QC image (noise, intensity, blur, flips, "
        "rotations) and limit the metric drops (robustness: in thresholds.yaml)",
    )
    parser.addini("qc_robustness", "segqc: see --robustness", type="bool", default=False)
    group.addoption(
        "--training-data",
        dest="qc_training_data",
        metavar="PATH",
        default=None,
        help="folder of the model's training images: fail if a QC image shows the same "
        "field of view (also flipped, rotated or cropped)",
    )
    parser.addini("qc_training_data", "segqc: see --training-data", default=None)
    group.addoption(
        "--qc-groups",
        dest="qc_groups",
        metavar="subfolders|FILE",
        default=None,
        help="image groups with their own limits: 'subfolders' (one group per subfolder "
        "of the QC folders) or a CSV file with columns image,group",
    )
    parser.addini("qc_groups", "segqc: see --qc-groups", default=None)


def _setting(config: pytest.Config, name: str) -> tuple[str, Path] | None:
    """A setting's value and the folder relative paths in it are resolved from."""
    value = config.getoption(name)
    if value:
        return str(value), config.invocation_params.dir
    ini_value = config.getini(name)
    if ini_value:
        return str(ini_value), config.inipath.parent if config.inipath else config.rootpath
    return None


def groups_setting(config: pytest.Config) -> str | Path | None:
    """``"subfolders"``, the groups CSV file, or None (``--qc-groups`` / ``qc_groups``)."""
    found = _setting(config, "qc_groups")
    if found is None:
        return None
    value, base = found
    return "subfolders" if value == "subfolders" else (base / value).resolve()


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Set up the checks asked for, once segqc's run is configured."""
    config.addinivalue_line("markers", f"{_INACTIVE}: a segqc check that was not asked for")
    session_plugin = config.pluginmanager.get_plugin("segqc-session")
    if session_plugin is None:
        return
    run: QcRun = session_plugin.run
    state = ChecksState(run)
    groups = groups_setting(config)
    if isinstance(groups, Path):
        try:
            mapping = read_groups_file(groups, [p.name for p in run.pairs])
        except GroupsFileError as exc:
            raise pytest.UsageError(f"segqc: --qc-groups: {exc}") from None
        run.pairs = tuple(dataclasses.replace(p, group=mapping[p.name]) for p in run.pairs)
    settings = run.thresholds.thresholds.robustness
    flag = config.getoption("qc_robustness")
    if settings is None and (flag if flag is not None else config.getini("qc_robustness")):
        settings = RobustnessSettings.default()
    if settings is not None:
        if run.predictor.needs_source_image:
            state.robustness = RobustnessRunner(run, settings)
        else:
            state.robustness_skip = (
                "segqc: robustness needs a model to predict perturbed images; "
                "skipped with --predictions"
            )
    training = _setting(config, "qc_training_data")
    if training is not None:
        folder = (training[1] / training[0]).resolve()
        if not folder.is_dir():
            raise pytest.UsageError(f"segqc: --training-data {folder}: folder does not exist")
        if not list_training_images(folder):
            raise pytest.UsageError(
                f"segqc: --training-data {folder}: contains no .tif/.tiff images "
                "(give the folder of training source images)"
            )
        state.training_dir = folder
    config.stash[_STATE] = state
    for key in ("robustness", "leakage", "subgroups"):
        run.summary_sections[key] = functools.partial(_summary_section, state, key)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test per perturbation x image, per size bin and per image group."""
    state = metafunc.config.stash.get(_STATE, None)
    inactive = pytest.param(None, marks=pytest.mark.segqc_inactive_check, id="inactive")
    if "qc_perturbation" in metafunc.fixturenames:
        if state is not None and state.robustness_skip:
            params = [pytest.param(None, marks=pytest.mark.skip(state.robustness_skip))]
            metafunc.parametrize("qc_perturbation", params, ids=["skipped"], indirect=True)
        elif state is None or state.robustness is None:
            metafunc.parametrize("qc_perturbation", [inactive], indirect=True)
        else:
            cases = [(p, pair) for p in state.robustness.plan for pair in state.run.pairs]
            ids = [f"{p.id}[{pair.name}]" for p, pair in cases]
            metafunc.parametrize("qc_perturbation", cases, ids=ids, indirect=True)
    if "qc_size_bin" in metafunc.fixturenames:
        sizes = None if state is None else state.run.thresholds.thresholds.subgroups.object_size
        if sizes is None:
            metafunc.parametrize("qc_size_bin", [inactive], indirect=True)
        else:
            names = sizes.bin_names()
            metafunc.parametrize("qc_size_bin", names, ids=names, indirect=True)
    if "qc_image_group" in metafunc.fixturenames:
        names = [] if state is None else sorted({p.group for p in state.run.pairs if p.group})
        if not names:
            metafunc.parametrize("qc_image_group", [inactive], indirect=True)
        else:
            metafunc.parametrize("qc_image_group", names, ids=names, indirect=True)
    if "qc_leakage" in metafunc.fixturenames and (state is None or state.training_dir is None):
        metafunc.parametrize("_qc_leakage_active", [inactive])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the tests of checks that were not asked for."""
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        (dropped if item.get_closest_marker(_INACTIVE) else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_sessionfinish(session: pytest.Session) -> None:
    """xdist worker: hand the robustness results it computed to the controller
    (:func:`pytest_testnodedown` receives them)."""
    state = session.config.stash.get(_STATE, None)
    if state is not None and state.robustness is not None:
        records = [dataclasses.asdict(r) for r in state.robustness.results.values()]
        send_to_controller(session.config, _ROBUSTNESS_KEY, records)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: keep a worker's robustness results for summary.json."""
    state = node.config.stash.get(_STATE, None)
    records = from_worker(node, _ROBUSTNESS_KEY, ())
    if state is not None and state.robustness is not None:
        for record in records:
            state.robustness.record(RobustnessResult(**record))


def _summary_section(state: ChecksState, key: str) -> Any:
    return summary_sections(state)[key]


def summary_sections(state: ChecksState) -> dict[str, Any]:
    """The ``robustness``, ``leakage`` and ``subgroups`` sections of summary.json.

    The leakage comparison is run here if no test ran it (e.g. on the xdist controller).
    """
    if state.leakage is None and state.training_dir is not None:
        state.leakage = _find_leaks(state)
    leakage = state.leakage
    robustness = state.robustness.summary() if state.robustness else None
    bins = state.size_bins()
    groups = state.groups()
    return {
        "robustness": robustness,
        "leakage": None
        if leakage is None
        else {
            "training_data": str(state.training_dir),
            "method": "max NCC of the highest-variance probe window over 8 flips/rotations, "
            "both directions, on smoothed block-averaged images",
            **leakage.settings,
            "n_qc": leakage.n_qc,
            "n_training": leakage.n_training,
            "seconds": round(leakage.seconds, 3),
            "passed": not leakage.leaks and not leakage.problems,
            "leaks": [
                {"qc": str(x.qc), "training": str(x.training), "score": x.score, "how": x.how}
                for x in leakage.leaks
            ],
            "closest": {k: {"training": v[0], "score": v[1]} for k, v in leakage.closest.items()},
            "problems": list(leakage.problems),
        },
        "subgroups": {
            "object_size": [
                {
                    "bin": b.name,
                    "min_area": b.min_area,
                    "max_area": b.max_area,
                    "values": b.values,
                    "limits": [v.as_dict() for v in b.verdicts],
                }
                for b in bins
            ],
            "image_groups": [
                {
                    "group": g.name,
                    "images": g.images,
                    "n_evaluated": g.n_evaluated,
                    "values": g.values,
                    "limits": [v.as_dict() for v in g.verdicts],
                }
                for g in groups
            ],
        },
    }


def _evaluate_all(outcomes: Mapping[str, ImageOutcome]) -> None:
    """Under xdist, outcomes are evaluated lazily; a subgroup needs all of them."""
    evaluate_all = getattr(outcomes, "evaluate_all", None)
    if evaluate_all is not None:
        evaluate_all()


def _state(request: pytest.FixtureRequest) -> ChecksState:
    state = request.config.stash.get(_STATE, None)
    if state is None:
        pytest.skip("segqc: no --model or --predictions given, QC tests skipped")
    return state


@pytest.fixture
def qc_perturbation(request: pytest.FixtureRequest) -> tuple[Perturbation, QcPair]:
    """The (perturbation, QC pair) of one robustness test."""
    return request.param


@pytest.fixture
def qc_robustness(
    request: pytest.FixtureRequest,
    qc_run: QcRun,
    qc_perturbation: tuple[Perturbation, QcPair],
) -> RobustnessResult:
    """Predict one perturbed QC image and compare its metrics with the original's."""
    state = _state(request)
    assert state.robustness is not None
    return state.robustness.evaluate(*qc_perturbation)


@pytest.fixture(scope="session")
def _qc_leakage_active() -> None:
    """Placeholder parametrised away when no ``--training-data`` is given."""


@pytest.fixture(scope="session")
def qc_leakage(
    request: pytest.FixtureRequest, qc_run: QcRun, _qc_leakage_active: None
) -> LeakageReport:
    """Compare every QC source image with every training image (once per session)."""
    state = _state(request)
    if state.training_dir is None:
        pytest.skip("segqc: no --training-data given")
    sources = [p.source for p in qc_run.pairs if p.source is not None]
    if not sources:
        pytest.skip("segqc: the leakage check needs the QC source images (--qc-source)")
    if state.leakage is None:
        state.leakage = _find_leaks(state)
    return state.leakage


def _find_leaks(state: ChecksState) -> LeakageReport:
    assert state.training_dir is not None
    settings = state.run.thresholds.thresholds.leakage
    return find_leaks(
        [p.source for p in state.run.pairs if p.source is not None],
        list_training_images(state.training_dir),
        ncc_threshold=settings.ncc_threshold,
        downsample=settings.downsample,
        probe_size=settings.probe_size,
    )


@pytest.fixture
def qc_size_bin(
    request: pytest.FixtureRequest, qc_outcomes: Mapping[str, ImageOutcome]
) -> SizeBinOutcome:
    """Recall and mean matched IoU of one object-size bin, over the whole QC set."""
    state = _state(request)
    _evaluate_all(qc_outcomes)
    return next(b for b in state.size_bins() if b.name == request.param)


@pytest.fixture
def qc_image_group(
    request: pytest.FixtureRequest, qc_outcomes: Mapping[str, ImageOutcome]
) -> GroupOutcome:
    """Every QC metric pooled over one image group."""
    state = _state(request)
    _evaluate_all(qc_outcomes)
    return next(g for g in state.groups() if g.name == request.param)
