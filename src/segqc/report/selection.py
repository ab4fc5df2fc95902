"""Which QC images get their panels in the report, and why.

Up to ``all_up_to`` images (200) every image is drawn: the visual assessment of the
whole QC set. Above that a report of every image would not open in a browser, so it
shows the images a reviewer needs: every failed or warned image, the ``worst`` images by
the gated metrics (default 50) and a seeded sample (default 50), each labelled with why
it is shown. ``--report-images all|failed|worst:N`` overrides this. The metrics table
always lists every image.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from segqc.metrics.catalogue import metric_spec
from segqc.settings import ReportImages
from segqc.thresholds.schema import Limit

__all__ = ["PanelPlan", "worst_images"]

#: Seed of the sample of a large QC set: the same images on every run and worker.
SAMPLE_SEED = 0


@dataclass(frozen=True)
class PanelPlan:
    """The panel choice of one session.

    Attributes
    ----------
    images : ReportImages
        The ``--report-images`` setting.
    n_images : int
        The number of QC images.
    sample : frozenset of str
        The seeded sample (empty unless the ``auto`` mode is above ``all_up_to``).
    """

    images: ReportImages
    n_images: int
    sample: frozenset[str] = frozenset()

    @classmethod
    def for_images(cls, names: Sequence[str], images: ReportImages) -> PanelPlan:
        """The plan for a QC set; the sample is drawn with :data:`SAMPLE_SEED`."""
        sample: frozenset[str] = frozenset()
        if images.mode == "auto" and len(names) > images.all_up_to:
            rng = random.Random(SAMPLE_SEED)
            sample = frozenset(rng.sample(list(names), min(images.sample, len(names))))
        return cls(images, len(names), sample)

    @property
    def every_image(self) -> bool:
        """Whether every image is drawn."""
        mode = self.images.mode
        return mode == "all" or (mode == "auto" and self.n_images <= self.images.all_up_to)

    @property
    def n_worst(self) -> int:
        """How many worst images to add at the end (0: none)."""
        if self.every_image or self.images.mode == "failed":
            return 0
        return self.images.worst

    def reason(self, name: str, status: str) -> str | None:
        """Why image ``name`` (with per-image ``status``) is drawn when evaluated, or None.

        ``status`` is ``pass``, ``warn``, ``fail`` or ``error``; the worst images are
        chosen later (:func:`worst_images`).
        """
        if self.every_image:
            return ""
        if self.images.mode in ("auto", "failed") and status in ("fail", "warn"):
            return "failed" if status == "fail" else "warned"
        if name in self.sample:
            return "seeded sample"
        return None


def _margin(value: float, limit: Limit, metric: str) -> float:
    """How far ``value`` is inside ``limit`` (negative: broken); counts relative to the limit."""
    margins = []
    for bound, sign in (("min", 1.0), ("max", -1.0)):
        edge = getattr(limit, bound)
        if edge is not None:
            margin = sign * (value - edge)
            if metric_spec(metric).kind == "count":
                margin /= max(abs(edge), 1.0)
            margins.append(margin)
    return min(margins) if margins else float("inf")


def worst_images(
    values: Iterable[tuple[str, Mapping[str, float]]], limits: Mapping[str, Limit], n: int
) -> list[tuple[str, str]]:
    """The ``n`` worst images by the gated (``per_image``) metrics, worst first.

    An image's rank is its smallest margin to any ``per_image`` limit (a count's margin
    is taken relative to its limit); without ``per_image`` limits, its f1.

    Returns
    -------
    list of (image name, reason)
        The reason names the metric and value that ranked it, e.g. ``worst #1 (f1 0.41)``.
    """
    ranked = []
    for name, row in values:
        if limits:
            margin, metric = min(
                (_margin(row[metric], limit, metric), metric) for metric, limit in limits.items()
            )
        else:
            margin, metric = row["f1"], "f1"
        if math.isnan(margin):  # undefined (an image without objects): not "worst"
            margin = math.inf
        ranked.append((margin, name, metric, row[metric]))
    ranked.sort(key=lambda item: (item[0], item[1]))
    return [
        (name, f"worst #{rank} ({metric} {value:.3g})")
        for rank, (_, name, metric, value) in enumerate(ranked[:n], start=1)
    ]
