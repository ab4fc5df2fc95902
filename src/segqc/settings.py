"""segqc's settings: every option and ini key, resolved once into one typed object.

The options themselves are declared in :mod:`segqc.plugin` (each can also be set in the
ini file, e.g. ``[tool.pytest.ini_options]``); :meth:`Settings.from_config` reads them
all, resolves paths (command-line paths against the folder pytest was started in, ini
paths against the ini file's folder) and checks the combinations, so that nothing later
reads an option again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pytest

__all__ = ["DEFAULT_OUTPUT", "PATH_OPTIONS", "ReportImages", "Settings", "SettingsError"]

#: The output folder when neither ``--qc-output`` nor ``qc_output`` is given.
DEFAULT_OUTPUT = "qc-output"

#: Path-valued options: (option, ini key and dest, help). Also read by the ``segqc``
#: command and the rootdir check, which must know which options take a path.
PATH_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("--model", "qc_model", "StarDist model folder to test (config.json, weights_best.h5)"),
    ("--qc-source", "qc_source", "folder of QC source images (.tif/.tiff)"),
    ("--qc-target", "qc_target", "folder of ground-truth label masks with the same file names"),
    ("--thresholds", "qc_thresholds", "limits file [default: thresholds.yaml in the rootdir]"),
    ("--predictions", "qc_predictions", "folder of label images another tool already "
     "predicted, used instead of --model (TensorFlow is never imported)"),
    ("--qc-output", "qc_output", f"folder for metrics.csv, summary.json, report.html, "
     f"predictions/ [default: {DEFAULT_OUTPUT}]"),
    ("--training-log", "qc_training_log", "training history to check instead of the model "
     "folder's: a CSV (loss, val_loss) or a TensorBoard logs folder"),
    ("--qc-cache", "qc_cache", "prediction cache folder [default: <qc-output>/cache]"),
    ("--baseline", "qc_baseline", "baseline file to compare with (or to write, with "
     "--update-baseline)"),
    ("--baseline-model", "qc_baseline_model", "released StarDist model folder to compare "
     "with, run on the same QC images in this session"),
    ("--training-data", "qc_training_data", "folder of the model's training images: fail if "
     "a QC image shows the same field of view (also flipped, rotated or cropped)"),
)  # fmt: skip


class SettingsError(ValueError):
    """Options that cannot work together or a value segqc cannot use; one line, with the fix."""


@dataclass(frozen=True)
class ReportImages:
    """Which images get their panels (input, ground truth, prediction, error map) drawn.

    ``mode``: ``auto`` (every image up to ``all_up_to`` images; above that every failed
    or warned image, the ``worst`` worst and a seeded sample of ``sample``), ``all``,
    ``failed`` (failed and warned images only) or ``worst`` (the ``worst`` worst only).
    """

    mode: Literal["auto", "all", "failed", "worst"] = "auto"
    worst: int = 50
    sample: int = 50
    all_up_to: int = 200

    @classmethod
    def parse(cls, text: str) -> ReportImages:
        """``auto``, ``all``, ``failed`` or ``worst:N``.

        Raises
        ------
        SettingsError
            Anything else.
        """
        value = text.strip()
        if value in ("auto", "all", "failed"):
            return cls(mode=value)  # type: ignore[arg-type]
        match = re.fullmatch(r"worst:(\d+)", value)
        if match and int(match.group(1)) > 0:
            return cls(mode="worst", worst=int(match.group(1)))
        raise SettingsError(
            f"--report-images {text!r}: expected auto, all, failed or worst:N (N > 0)"
        )


@dataclass(frozen=True)
class Settings:
    """Every segqc option, resolved. Paths are absolute; None means "not given"."""

    model: Path | None = None
    predictions: Path | None = None
    source: Path | None = None
    target: Path | None = None
    thresholds: Path | None = None
    output: Path = field(default_factory=lambda: Path(DEFAULT_OUTPUT).resolve())
    training_log: Path | None = None
    cache: Path | None = None
    no_cache: bool = False
    overwrite: bool = False
    device: Literal["auto", "cpu", "gpu"] = "auto"
    compare_device: Literal["cpu", "gpu"] | None = None
    baseline: Path | None = None
    baseline_model: Path | None = None
    update_baseline: bool = False
    baseline_allow_different_data: bool = False
    robustness: bool = False
    training_data: Path | None = None
    groups: Literal["subfolders"] | Path | None = None
    report_images: ReportImages = ReportImages()
    rootdir: Path = field(default_factory=Path.cwd)

    @property
    def active(self) -> bool:
        """Whether a QC run was asked for (``--model`` or ``--predictions``)."""
        return self.model is not None or self.predictions is not None

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        """Read every segqc option and ini key of ``config``.

        Raises
        ------
        SettingsError
            Options that contradict each other, or a value that is not allowed.
        """
        reader = _Reader(config)
        path = reader.path
        device = reader.value("qc_device") or "auto"
        if device not in ("auto", "cpu", "gpu"):
            raise SettingsError(f"qc_device = {device!r}: must be auto, cpu or gpu")
        groups_value = reader.value("qc_groups")
        groups: Literal["subfolders"] | Path | None = None
        if groups_value == "subfolders":
            groups = "subfolders"
        elif groups_value:
            groups = path("qc_groups")
        report_images = reader.value("qc_report_images")
        settings = cls(
            model=path("qc_model"),
            predictions=path("qc_predictions"),
            source=path("qc_source"),
            target=path("qc_target"),
            thresholds=path("qc_thresholds"),
            output=path("qc_output") or (config.invocation_params.dir / DEFAULT_OUTPUT).resolve(),
            training_log=path("qc_training_log"),
            cache=path("qc_cache"),
            no_cache=bool(config.getoption("qc_no_cache")),
            overwrite=reader.flag("qc_overwrite"),
            device=device,  # type: ignore[arg-type]
            compare_device=config.getoption("qc_compare_device", None),
            baseline=path("qc_baseline"),
            baseline_model=path("qc_baseline_model"),
            update_baseline=reader.flag("qc_update_baseline"),
            baseline_allow_different_data=reader.flag("qc_baseline_allow_different_data"),
            robustness=reader.flag("qc_robustness"),
            training_data=path("qc_training_data"),
            groups=groups,
            report_images=ReportImages.parse(report_images) if report_images else ReportImages(),
            rootdir=config.rootpath,
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse options that cannot work together.

        Raises
        ------
        SettingsError
        """
        if not self.active:
            return
        if self.model is not None and self.predictions is not None:
            raise SettingsError("give either --model or --predictions, not both")
        if self.target is None or (self.source is None and self.model is not None):
            raise SettingsError(
                "--qc-source and --qc-target are required with --model "
                "(--qc-target with --predictions), or set qc_source/qc_target in the ini file"
            )
        if self.compare_device is not None and self.model is None:
            raise SettingsError(
                f"--compare-device {self.compare_device} predicts each image a second time; "
                "it needs --model (predictions read from a folder have no device)"
            )
        if self.compare_device == "gpu" and self.device == "cpu":
            raise SettingsError(
                "--device cpu hides the GPUs from TensorFlow, so --compare-device gpu "
                "cannot use one; compare the other way: --device gpu --compare-device cpu"
            )
        if self.update_baseline and self.baseline is None:
            raise SettingsError("--update-baseline needs --baseline PATH: the file to write")
        if self.baseline_model is not None and self.baseline is not None:
            raise SettingsError(
                "give --baseline FILE or --baseline-model DIR, not both "
                "(write a file from a model with --model DIR --baseline FILE --update-baseline)"
            )
        for role, folder in (
            ("--qc-source", self.source),
            ("--qc-target", self.target),
            ("--model", self.model),
            ("--predictions", self.predictions),
        ):
            if folder is not None and _is_within(self.output, folder):
                where = "the" if self.output == folder else "inside the"
                raise SettingsError(
                    f"--qc-output {self.output} is {where} {role} folder {folder}; segqc would "
                    "write among your inputs — choose an output folder outside it"
                )


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


class _Reader:
    """Reads one option: the command line wins, then the ini file."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def value(self, name: str) -> Any:
        value = self.config.getoption(name)
        if value not in (None, ""):
            return value
        ini_value = self.config.getini(name)
        return ini_value if ini_value not in (None, "", []) else None

    def flag(self, name: str) -> bool:
        value = self.config.getoption(name)
        return bool(value if value is not None else self.config.getini(name))

    def path(self, name: str) -> Path | None:
        """A path from the command line (relative to the invocation folder) or the ini
        file (relative to the ini file's folder)."""
        value = self.config.getoption(name)
        if value:
            return (self.config.invocation_params.dir / str(value)).resolve()
        ini_value = self.config.getini(name)
        if ini_value:
            inipath = self.config.inipath
            base = inipath.parent if inipath else self.config.rootpath
            return (base / str(ini_value)).resolve()
        return None
