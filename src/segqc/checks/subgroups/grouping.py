"""Metrics per subgroup, so a model cannot hide a weak spot behind a good average.

Two kinds of subgroups, each judged against its own limits (``subgroups:`` in
thresholds.yaml):

* **Object size.** Ground-truth objects are put in bins by area (pixels; voxels in 3D)
  with the ``edges`` given: with edges ``[a, b]``, *small* is area < a, *medium*
  a <= area < b, *large* area >= b. Per bin, pooled over the QC set: ``n_true``, ``tp``
  (ground-truth objects matched at the IoU threshold), ``fn``, ``recall`` = tp / n_true,
  ``mean_matched_score`` (mean IoU of the matched objects) and ``mean_true_score`` (sum
  of matched IoUs / n_true). Precision has no size bin: a false positive has no
  ground-truth object to take a size from.
* **Image group.** Images are grouped by the subfolder they are in (``--qc-groups
  subfolders``) or by a CSV file (``--qc-groups FILE``, columns ``image,group``); every
  QC metric is pooled over each group's images like the ``aggregate`` scope.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from segqc.checks.verdict import Verdict, judge
from segqc.data.config_files import ConfigFileError, read_config_text
from segqc.metrics.object_matches import AreaBins, pool_area_bins
from segqc.metrics.scores import pool
from segqc.pipeline.outcome import ImageOutcome
from segqc.thresholds.schema import ImageGroupSettings, Limit, ObjectSizeSettings

__all__ = [
    "GroupOutcome",
    "GroupsFileError",
    "SizeBinOutcome",
    "image_group_outcomes",
    "read_groups_file",
    "size_bin_outcomes",
    "size_bin_values",
]


class GroupsFileError(ValueError):
    """The ``--qc-groups`` CSV cannot be used; the message lists every problem."""


@dataclass(frozen=True)
class SizeBinOutcome:
    """Pooled per-object metrics of one size bin, with their verdicts."""

    name: str
    min_area: float | None
    max_area: float | None
    values: dict[str, float]
    verdicts: list[Verdict]

    @property
    def label(self) -> str:
        """``small objects (area < 80)``, ``medium objects (80 <= area < 300)``, ..."""
        low, high = self.min_area, self.max_area
        if low is None:
            bounds = f"area < {high:g}"
        elif high is None:
            bounds = f"area >= {low:g}"
        else:
            bounds = f"{low:g} <= area < {high:g}"
        return f"{self.name} objects ({bounds})"


@dataclass(frozen=True)
class GroupOutcome:
    """Every QC metric pooled over one image group, with its verdicts."""

    name: str
    images: list[str]
    n_evaluated: int
    values: dict[str, float] | None
    verdicts: list[Verdict]


def size_bin_values(bins: AreaBins) -> list[dict[str, float]]:
    """Per-bin counts and ratios from objects counted by area bin.

    Parameters
    ----------
    bins : AreaBins
        Counts pooled over the QC set (:func:`segqc.metrics.object_matches.pool_area_bins`).

    Returns
    -------
    list of dict
        ``len(bins.edges) + 1`` dicts with ``n_true``, ``tp``, ``fn``, ``recall``,
        ``mean_true_score``, ``mean_matched_score``; ratios are NaN in an empty bin and
        ``mean_matched_score`` is NaN when nothing in the bin was matched.
    """
    rows = []
    for n, t, iou_sum in zip(bins.n_true, bins.tp, bins.iou_sum, strict=True):
        rows.append(
            {
                "n_true": float(n),
                "tp": float(t),
                "fn": float(n - t),
                "recall": t / n if n else math.nan,
                "mean_true_score": iou_sum / n if n else math.nan,
                "mean_matched_score": iou_sum / t if t else math.nan,
            }
        )
    return rows


def size_bin_outcomes(
    outcomes: Sequence[ImageOutcome], settings: ObjectSizeSettings
) -> list[SizeBinOutcome]:
    """Judge every size bin against its limits (``limits``, overridden by ``by_bin``).

    Images that could not be evaluated are left out. A bin without ground-truth objects
    gets no verdicts.
    """
    edges = list(settings.edges)
    pooled = pool_area_bins([o.area_bins for o in outcomes if o.area_bins is not None], edges)
    result = []
    for i, (name, values) in enumerate(
        zip(settings.bin_names(), size_bin_values(pooled), strict=True)
    ):
        verdicts: list[Verdict] = []
        if values["n_true"] > 0:
            label = SizeBinOutcome(name, _edge(edges, i - 1), _edge(edges, i), {}, []).label
            verdicts = _judge_with_overrides(
                values,
                settings.bin_limits(name),
                set(_set_keys(settings.by_bin.get(name))),
                scope="subgroups.object_size",
                override_scope=f"subgroups.object_size.by_bin.{name}",
                subject=label,
            )
        result.append(SizeBinOutcome(name, _edge(edges, i - 1), _edge(edges, i), values, verdicts))
    return result


def image_group_outcomes(
    outcomes: Sequence[ImageOutcome], settings: ImageGroupSettings
) -> list[GroupOutcome]:
    """Pool each image group's evaluated images and judge them (sorted by group name)."""
    groups: dict[str, list[ImageOutcome]] = {}
    for outcome in outcomes:
        if outcome.pair.group is not None:
            groups.setdefault(outcome.pair.group, []).append(outcome)
    result = []
    for name in sorted(groups):
        members = groups[name]
        scores = [o.scores for o in members if o.scores is not None]
        values = pool(scores).values() if scores else None
        verdicts = []
        if values is not None:
            verdicts = _judge_with_overrides(
                values,
                settings.group_limits(name),
                set(_set_keys(settings.by_group.get(name))),
                scope="subgroups.image_groups",
                override_scope=f"subgroups.image_groups.by_group.{name}",
                subject=f"group {name}",
            )
        images = [o.pair.name for o in members]
        result.append(GroupOutcome(name, images, len(scores), values, verdicts))
    return result


def read_groups_file(path: Path, image_names: Sequence[str]) -> dict[str, str]:
    """Read a CSV mapping image file name -> group (columns ``image`` and ``group``).

    Raises
    ------
    GroupsFileError
        Missing or unreadable file, not a regular file, larger than 1 MiB, missing columns,
        empty group, an image listed twice, names that are not QC images, or QC images not
        listed; every problem at once.
    """
    try:
        text = read_config_text(path, what="groups file", encoding="utf-8-sig")
    except FileNotFoundError:
        raise GroupsFileError(
            f"{path}: file not found; give a CSV with columns image,group"
        ) from None
    except ConfigFileError as exc:
        raise GroupsFileError(str(exc)) from None
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = list(reader)
        header = list(reader.fieldnames or [])
    except csv.Error as exc:
        raise GroupsFileError(f"{path}: cannot read the groups file ({exc})") from None
    if not rows or not {"image", "group"} <= set(header):
        raise GroupsFileError(
            f"{path}: expected a CSV with a header row 'image,group' and one row per QC image"
        )
    problems: list[str] = []
    mapping: dict[str, str] = {}
    for line, row in enumerate(rows, start=2):
        image, group = (row.get("image") or "").strip(), (row.get("group") or "").strip()
        if not image or not group:
            problems.append(f"{path}:{line}: empty image or group")
        elif image in mapping:
            problems.append(f"{path}:{line}: {image} is listed twice")
        else:
            mapping[image] = group
    unknown = sorted(set(mapping) - set(image_names))
    missing = sorted(set(image_names) - set(mapping))
    if unknown:
        problems.append(f"{path}: not QC images: {', '.join(unknown)}")
    if missing:
        problems.append(f"{path}: QC images without a group: {', '.join(missing)}")
    if problems:
        raise GroupsFileError("\n".join(problems))
    return mapping


def _edge(edges: list[float], index: int) -> float | None:
    return edges[index] if 0 <= index < len(edges) else None


def _set_keys(section: object) -> list[str]:
    if section is None:
        return []
    return [key for key, value in section if value is not None]  # type: ignore[attr-defined]


def _judge_with_overrides(
    values: dict[str, float],
    limits: dict[str, Limit],
    overridden: set[str],
    *,
    scope: str,
    override_scope: str,
    subject: str,
) -> list[Verdict]:
    """Judge, naming ``by_bin``/``by_group`` as the key of limits that were overridden."""
    common = {k: v for k, v in limits.items() if k not in overridden}
    special = {k: v for k, v in limits.items() if k in overridden}
    return judge(values, common, scope=f"{scope}.limits", subject=subject) + judge(
        values, special, scope=override_scope, subject=subject
    )
