"""The report's panels, kept on disk until the report is written.

Panels arrive one image at a time (from this process or from pytest-xdist workers); a
large QC set can bring hundreds, so each image's panels are written to a file of a
temporary folder (:class:`PanelStore`) and read back one at a time when the report is
written: put into the HTML file (:mod:`segqc.report.inline`), or, above
:data:`INLINE_UP_TO` images, written as picture files into ``report-images/`` beside the
report and linked from it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from segqc.report.panels import ImageVisual, load_visual, visual_from

__all__ = ["INLINE_UP_TO", "PanelStore", "picture_files"]

#: Up to this many images' panels are put into report.html itself.
INLINE_UP_TO = 200


class PanelStore:
    """Panels by image name, each image's in its own file of ``folder``.

    Parameters
    ----------
    folder : Path
        An empty folder this store owns (removed by its owner).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._entries: dict[str, tuple[Path, str]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def put(self, name: str, document: Mapping[str, Any], reason: str) -> None:
        """Keep the panels ``document`` (:func:`segqc.report.panels.visual_document`) of
        image ``name``, shown because of ``reason`` ("" when every image is shown).

        Raises
        ------
        OSError
            The file could not be written.
        ValueError
            ``document`` is not a panels document.
        """
        visual_from(document)  # refuse anything else now, not when the report is written
        path = self.folder / f"{hashlib.sha256(name.encode()).hexdigest()}.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        self._entries[name] = (path, reason)

    def reason(self, name: str) -> str | None:
        """Why image ``name`` is shown, or None when it has no panels."""
        entry = self._entries.get(name)
        return None if entry is None else entry[1]

    def file(self, name: str) -> Path | None:
        """The file of image ``name``'s panels."""
        entry = self._entries.get(name)
        return None if entry is None else entry[0]

    def load(self, name: str) -> ImageVisual | None:
        """The panels of image ``name`` (None: none kept, or the file is gone)."""
        path = self.file(name)
        if path is None:
            return None
        try:
            return load_visual(path)
        except (OSError, ValueError, KeyError, TypeError):
            return None


_EXTENSIONS = {"data:image/png;base64,": ".png", "data:image/jpeg;base64,": ".jpg"}


def picture_files(visual: ImageVisual, folder: Path, stem: str) -> Iterator[Path]:
    """Write each panel of ``visual`` as a picture file ``<folder>/<stem>-<i>.<ext>``.

    Yields
    ------
    Path
        Each file written, in panel order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for index, panel in enumerate(visual.panels):
        for prefix, extension in _EXTENSIONS.items():
            if panel.data_uri.startswith(prefix):
                path = folder / f"{stem}-{index}{extension}"
                path.write_bytes(base64.b64decode(panel.data_uri[len(prefix) :]))
                yield path
                break
