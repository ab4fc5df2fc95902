"""Put segqc's sections and each image's panels into the written report file.

pytest-html renders its whole page into one string and copies it while writing, so
panels inlined in segqc's section would be held in memory several times over: a run
on 200 images held ~26 MB of pictures four or five times. Instead the section is
rendered with a short placeholder where each panel's ``src`` goes
(:meth:`DeferredContent.placeholder`), and once pytest-html has written the file,
:meth:`DeferredContent.inline_into` streams it line by line into a temporary file
beside it, putting each panel's data URI in place of its placeholder, and replaces
the report atomically. The report stays one self-contained file; the memory a run
needs no longer grows with the number of images.

The sections themselves (the metrics table of 10,000 images is 14 MB of HTML) take the
same route: they are rendered a piece at a time into a temporary file
(:meth:`DeferredContent.section`), pytest-html's page holds one placeholder line for
them, and :meth:`DeferredContent.inline_into` copies them in, panels and all.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["DeferredContent"]


class DeferredContent:
    """segqc's rendered sections and the panels of saved visuals
    (:func:`segqc.report.panels.save_visual`), to put into the written report later.

    Each placeholder carries a random per-session token, so nothing else in the page
    (test names, captured logs) can be mistaken for one.
    """

    def __init__(self) -> None:
        self._token = f"segqc-deferred-{secrets.token_hex(8)}-"
        self._pattern = re.compile(re.escape(self._token) + r"(\d+)")
        self._panels: list[tuple[Path, int]] = []
        self._loaded: tuple[Path, tuple[str, ...]] | None = None
        self._section: Path | None = None

    def __len__(self) -> int:
        return len(self._panels)

    @property
    def pending(self) -> bool:
        """Whether anything waits to be put into the report file."""
        return bool(self._panels) or self._section is not None

    def section(self, chunks: Iterable[str], folder: Path) -> str:
        """Write ``chunks`` (rendered HTML) to a temporary file in ``folder``; return the
        placeholder line that :meth:`inline_into` replaces by them.

        An exception while rendering leaves no file behind and is raised again.
        """
        self.discard()
        fd, name = tempfile.mkstemp(dir=folder, prefix=".report.html.", suffix=".section")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                for chunk in chunks:
                    handle.write(chunk)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        self._section = Path(name)
        return f"\n{self._section_token}\n"

    @property
    def _section_token(self) -> str:
        return f"{self._token}section"

    def discard(self) -> None:
        """Remove the temporary file of a section that was never put into a report."""
        if self._section is not None:
            self._section.unlink(missing_ok=True)
            self._section = None

    def placeholder(self, visual_file: Path, index: int) -> str:
        """A stand-in for panel ``index`` of ``visual_file``, replaced by :meth:`inline_into`."""
        self._panels.append((visual_file, index))
        return f"{self._token}{len(self._panels) - 1}"

    def inline_into(self, html_file: Path) -> int:
        """Replace the section's placeholder line by the section, and every panel's
        placeholder by the panel's data URI.

        The file is rewritten through a temporary file in the same folder and then
        renamed over the original, so a failure leaves the report as pytest-html wrote
        it. A panel whose file can no longer be read becomes an empty ``src`` (the
        image's ``alt`` text shows instead).

        Parameters
        ----------
        html_file : Path
            The report written by pytest-html.

        Returns
        -------
        int
            The number of placeholders replaced.

        Raises
        ------
        OSError
            The report could not be read or rewritten.
        """
        replaced = 0

        def data_uri(match: re.Match[str]) -> str:
            nonlocal replaced
            replaced += 1
            return self._data_uri(int(match.group(1)))

        def inline(text: str) -> str:
            return self._pattern.sub(data_uri, text) if self._token in text else text

        fd, tmp_name = tempfile.mkstemp(dir=html_file.parent, prefix=f".{html_file.name}.")
        try:
            with (
                html_file.open(encoding="utf-8", newline="") as source,
                os.fdopen(fd, "w", encoding="utf-8", newline="") as target,
            ):
                for line in source:
                    if self._section is not None and line.strip() == self._section_token:
                        with self._section.open(encoding="utf-8", newline="") as section:
                            for text in section:
                                target.write(inline(text))
                    else:
                        target.write(inline(line))
            os.chmod(tmp_name, html_file.stat().st_mode & 0o777)
            os.replace(tmp_name, html_file)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        finally:
            self._loaded = None
            self.discard()
        return replaced

    def _data_uri(self, number: int) -> str:
        from segqc.report.panels import load_visual

        if number >= len(self._panels):
            return ""
        path, index = self._panels[number]
        if self._loaded is None or self._loaded[0] != path:
            try:
                uris = tuple(panel.data_uri for panel in load_visual(path).panels)
            except (OSError, ValueError, KeyError, TypeError):
                uris = ()
            self._loaded = (path, uris)  # panels of one image come one after the other
        uris = self._loaded[1]
        return uris[index] if index < len(uris) else ""
