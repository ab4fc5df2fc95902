"""The subgroup checks in a QC session: one small plugin object."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from segqc.checks.subgroups.grouping import (
    GroupOutcome,
    SizeBinOutcome,
    image_group_outcomes,
    size_bin_outcomes,
)

if TYPE_CHECKING:
    from segqc.session import QcSession

__all__ = ["SubgroupsPlugin"]


class SubgroupsPlugin:
    """One test per object-size bin and per image group; adds ``subgroups`` to summary.json.

    Parameters
    ----------
    session : QcSession
    inactive : pytest.MarkDecorator
        The marker that deselects the tests of a check that was not asked for.
    """

    def __init__(self, session: QcSession, inactive: pytest.MarkDecorator) -> None:
        self.session = session
        self.inactive = inactive

    def size_bins(self) -> list[SizeBinOutcome]:
        """Size-bin outcomes over the images evaluated so far ([] when not configured)."""
        settings = self.session.limits.subgroups.object_size
        return [] if settings is None else size_bin_outcomes(self.session.outcomes, settings)

    def groups(self) -> list[GroupOutcome]:
        """Image-group outcomes over the images evaluated so far."""
        settings = self.session.limits.subgroups.image_groups
        return image_group_outcomes(self.session.outcomes, settings)

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """One test per size bin (``subgroups.object_size``) and per image group."""
        inactive = pytest.param(None, marks=self.inactive, id="inactive")
        if "qc_size_bin" in metafunc.fixturenames:
            sizes = self.session.limits.subgroups.object_size
            names = [] if sizes is None else sizes.bin_names()
            params = names or [inactive]
            metafunc.parametrize("qc_size_bin", params, ids=names or None, indirect=True)
        if "qc_image_group" in metafunc.fixturenames:
            names = sorted({p.group for p in self.session.pairs if p.group})
            params = names or [inactive]
            metafunc.parametrize("qc_image_group", params, ids=names or None, indirect=True)

    def pytest_segqc_summary_section(self, session: QcSession) -> dict[str, Any]:
        """summary.json's ``subgroups``: every size bin and image group, with verdicts."""
        return {
            "subgroups": {
                "object_size": [
                    {
                        "bin": b.name,
                        "min_area": b.min_area,
                        "max_area": b.max_area,
                        "values": b.values,
                        "limits": [v.as_dict() for v in b.verdicts],
                    }
                    for b in self.size_bins()
                ],
                "image_groups": [
                    {
                        "group": g.name,
                        "images": g.images,
                        "n_evaluated": g.n_evaluated,
                        "values": g.values,
                        "limits": [v.as_dict() for v in g.verdicts],
                    }
                    for g in self.groups()
                ],
            }
        }
