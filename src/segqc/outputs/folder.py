"""The output folder: claimed and locked for one run, written by that run alone.

* **Claimed.** A folder is segqc's once it holds the marker file :data:`OWNER_MARKER`;
  segqc then replaces the files of :data:`OUTPUT_NAMES` in it and touches nothing else.
  A folder that already holds such files without the marker is refused unless the user
  passes ``--qc-overwrite``.
* **Locked.** While a run uses the folder it holds :data:`LOCK_NAME` (an OS file lock,
  through ``filelock``), so a second run on the same folder stops at once, naming the
  first; a crashed run's lock goes with its process.
* **This run's images only.** Predictions are written as they come in; when the run
  writes its outputs, files that an earlier run left in ``predictions/`` (and
  ``baseline-model/predictions/``) are removed (:meth:`OutputFolder.prune_predictions`).

Only the process that writes the outputs (the pytest-xdist controller, or the only
process) opens an :class:`OutputFolder`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

from segqc.data.writing import OutputError, atomic_write_bytes, atomic_write_text

__all__ = ["LOCK_NAME", "OUTPUT_NAMES", "OWNER_MARKER", "OutputFolder", "OutputFolderBusy"]

#: The files and folders segqc writes in its output folder (and nothing else).
OUTPUT_NAMES: tuple[str, ...] = (
    "metrics.csv",
    "summary.json",
    "report.html",
    "report-images",
    "loss_curve.png",
    "predictions",
    "baseline-model",
    "cache",
)

#: Marks a folder as segqc's, so a later run may replace the files in OUTPUT_NAMES.
OWNER_MARKER = ".segqc-output"
#: Held while a run uses the folder.
LOCK_NAME = ".segqc-output.lock"
#: Beside the lock: who holds it, for the message a second run prints.
HOLDER_NAME = ".segqc-output.holder"
#: Prefix of every temporary file or folder a run makes in the output folder.
TEMPORARY_PREFIX = ".segqc-tmp-"


class OutputFolderBusy(OutputError):
    """Another segqc run is using the output folder."""


class OutputFolder:
    """One run's output folder, claimed and locked (see the module docstring).

    Parameters
    ----------
    path : Path
        The folder; created if missing.
    overwrite : bool
        Take over a folder that holds files named like segqc's outputs that segqc did
        not write (``--qc-overwrite``).

    Raises
    ------
    OutputFolderBusy
        Another run holds the folder's lock.
    OutputError
        The folder cannot be created or written to, or it holds files named like
        segqc's outputs that segqc did not write (and ``overwrite`` is false).
    """

    def __init__(self, path: Path, *, overwrite: bool = False) -> None:
        import filelock

        self.path = path
        self._written: dict[str, set[str]] = {}
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"{path}: output folder is not writable ({exc.strerror or exc}); "
                "choose another with --qc-output"
            ) from None
        self._lock = filelock.FileLock(path / LOCK_NAME, timeout=0)
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise OutputFolderBusy(
                f"{path}: output folder is in use by another segqc run ({self._holder()}); "
                "wait for it to finish, or choose another --qc-output"
            ) from None
        except OSError as exc:
            raise OutputError(
                f"{path}: output folder is not writable ({exc.strerror or exc}); "
                "choose another with --qc-output"
            ) from None
        try:
            self._claim(overwrite)
            atomic_write_text(
                path / HOLDER_NAME,
                json.dumps(
                    {
                        "pid": os.getpid(),
                        "host": socket.gethostname(),
                        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                    }
                ),
                durable=False,
            )
            self._remove_temporaries()
        except BaseException:
            self._lock.release()
            raise

    def _holder(self) -> str:
        try:
            holder = json.loads((self.path / HOLDER_NAME).read_text(encoding="utf-8"))
            return f"pid {holder['pid']} on {holder['host']}, started {holder['started']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "process unknown"

    def _claim(self, overwrite: bool) -> None:
        marker = self.path / OWNER_MARKER
        try:
            if not marker.exists():
                foreign = sorted(name for name in OUTPUT_NAMES if (self.path / name).exists())
                if foreign and not overwrite:
                    raise OutputError(
                        f"{self.path}: already contains {', '.join(foreign)} not written by "
                        "segqc; choose another --qc-output, or pass --qc-overwrite to replace "
                        "them"
                    )
                atomic_write_text(
                    marker, "segqc writes its outputs here and replaces them on each run.\n"
                )
        except OutputError:
            raise
        except OSError as exc:
            raise OutputError(
                f"{self.path}: output folder is not writable ({exc.strerror or exc}); "
                "choose another with --qc-output"
            ) from None

    def _remove_temporaries(self) -> None:
        """Remove what an earlier run that crashed left behind (this run holds the lock)."""
        for leftover in self.path.glob(f"{TEMPORARY_PREFIX}*"):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)

    def temporary_folder(self, purpose: str) -> Path:
        """A new empty folder in the output folder, removed by :meth:`close` (or, after a
        crash, by the next run)."""
        import tempfile

        return Path(tempfile.mkdtemp(prefix=f"{TEMPORARY_PREFIX}{purpose}-", dir=self.path))

    def write_prediction(self, subfolder: str, stem: str, data: bytes) -> Path:
        """Write one predicted label image (TIFF bytes) as ``<subfolder>/<stem>.tif``.

        Raises
        ------
        OutputError
            The file could not be written.
        """
        path = self.path / subfolder / f"{stem}.tif"
        atomic_write_bytes(path, data)
        self._written.setdefault(subfolder, set()).add(f"{stem}.tif")
        return path

    def prune_predictions(self) -> list[str]:
        """Remove the prediction files this run did not write (an earlier run's images).

        Returns
        -------
        list of str
            One line per file that could not be removed.
        """
        problems: list[str] = []
        for subfolder in ("predictions", "baseline-model/predictions"):
            folder = self.path / subfolder
            if not folder.is_dir():
                continue
            kept = self._written.get(subfolder, set())
            for path in sorted(folder.rglob("*"), reverse=True):  # files before their folders
                if path.relative_to(folder).as_posix() in kept:
                    continue
                try:
                    if path.is_dir() and not path.is_symlink():
                        if not any(path.iterdir()):
                            path.rmdir()
                    else:
                        path.unlink()
                except OSError as exc:
                    problems.append(f"{path}: cannot remove ({exc.strerror or exc})")
        return problems

    def close(self) -> None:
        """Remove this run's temporary folders and release the lock."""
        self._remove_temporaries()
        (self.path / HOLDER_NAME).unlink(missing_ok=True)
        self._lock.release()
