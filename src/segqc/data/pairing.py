"""Discover the QC image pairs: a source image and its ground-truth label mask.

Pairs are matched by file name: ``source/cells_01.tif`` goes with ``target/cells_01.tif``
(``.tif`` and ``.tiff`` in any letter case count as the same extension). Every problem
with the folders is collected and reported at once, so a user fixes them in one go.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "TIFF_SUFFIXES",
    "PairingError",
    "QcPair",
    "QcPairing",
    "discover_pairs",
    "find_prediction_files",
]

TIFF_SUFFIXES = (".tif", ".tiff")


class PairingError(ValueError):
    """The QC folders cannot be paired; ``problems`` lists every reason, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True, slots=True)
class QcPair:
    """One QC image and its ground truth.

    Attributes
    ----------
    name : str
        The source file name; used as the test id and the row label in every output.
    source : Path or None
        The source image (None in ``--predictions`` mode without source images).
    target : Path
        The ground-truth label mask.
    group : str or None
        The image group (its subfolder, or from ``--qc-groups FILE``), if any.
    """

    name: str
    source: Path | None
    target: Path
    group: str | None = None

    @property
    def stem(self) -> str:
        """The name without its TIFF extension (the pairing key; ``sub/name`` in a subfolder)."""
        return self.name[: -len(Path(self.name).suffix)]


@dataclass(frozen=True)
class QcPairing:
    """The pairs found, sorted by name, and the non-TIFF files that were ignored."""

    pairs: tuple[QcPair, ...]
    ignored: tuple[Path, ...]


def _stem(path: Path) -> str:
    return path.name[: -len(path.suffix)]


def _is_tiff(path: Path) -> bool:
    return path.suffix.lower() in TIFF_SUFFIXES


def _list_tiffs(
    folder: Path, role: str, problems: list[str], *, subfolders: bool = False
) -> tuple[dict[str, Path], list[Path]]:
    """Map stem -> TIFF file in ``folder``; collect problems instead of raising.

    With ``subfolders``, the TIFFs of each (non-hidden) subfolder are listed too, keyed
    ``subfolder/stem``.
    """
    if not folder.exists():
        problems.append(f"{role} folder {folder} does not exist")
        return {}, []
    if not folder.is_dir():
        problems.append(f"{role} folder {folder} is not a folder")
        return {}, []
    try:
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except PermissionError:
        problems.append(f"{role} folder {folder} cannot be read (permission denied)")
        return {}, []
    by_stem: dict[str, Path] = {}
    ignored: list[Path] = []
    if subfolders:
        entries = entries + sorted(
            p
            for sub in entries
            if sub.is_dir()
            for p in sub.iterdir()
            if not p.name.startswith(".") and not p.is_dir()
        )
    for path in entries:
        if path.is_dir() and subfolders:
            continue  # its files were listed above
        if path.is_dir() or not _is_tiff(path):
            ignored.append(path)
            continue
        stem = _stem(path) if path.parent == folder else f"{path.parent.name}/{_stem(path)}"
        if stem in by_stem:
            problems.append(
                f"{role} folder {folder}: {by_stem[stem].name} and {path.name} differ only by "
                "extension; keep one of them"
            )
            continue
        by_stem[stem] = path
    if not by_stem:
        problems.append(f"{role} folder {folder} contains no .tif/.tiff images")
    return by_stem, ignored


def discover_pairs(
    source_dir: Path, target_dir: Path, *, source_role: str = "source", subfolders: bool = False
) -> QcPairing:
    """Pair source images with ground-truth masks by file name.

    Parameters
    ----------
    source_dir, target_dir : Path
        Folders of source images and of ground-truth label masks.
    source_role : str
        What the first folder holds, for messages (``"predictions"`` when predictions are
        paired with targets directly).
    subfolders : bool
        Also pair the images of subfolders (one level deep): ``source/a/x.tif`` with
        ``target/a/x.tif``, named ``a/x.tif``, in group ``a``.

    Returns
    -------
    QcPairing
        The pairs, sorted by name, and the ignored (non-TIFF) files.

    Raises
    ------
    PairingError
        A folder is missing or empty, or some images have no partner; the error lists
        every offending folder and file name.
    """
    problems: list[str] = []
    sources, ignored_sources = _list_tiffs(source_dir, source_role, problems, subfolders=subfolders)
    targets, ignored_targets = _list_tiffs(target_dir, "target", problems, subfolders=subfolders)
    if sources and targets:
        missing_target = sorted(
            str(sources[s].relative_to(source_dir)) for s in sources.keys() - targets.keys()
        )
        missing_source = sorted(
            str(targets[s].relative_to(target_dir)) for s in targets.keys() - sources.keys()
        )
        if missing_target:
            problems.append(
                f"no ground truth in {target_dir} for: {', '.join(missing_target)} "
                "(masks must have the same file name as their source image)"
            )
        if missing_source:
            problems.append(
                f"no {source_role} image in {source_dir} for: {', '.join(missing_source)}"
            )
    if problems:
        raise PairingError(problems)
    pairs = tuple(
        QcPair(
            name=stem + sources[stem].suffix,
            source=sources[stem],
            target=targets[stem],
            group=stem.split("/")[0] if "/" in stem else None,
        )
        for stem in sorted(sources)
    )
    return QcPairing(pairs=pairs, ignored=tuple(ignored_sources + ignored_targets))


def find_prediction_files(
    pairs: tuple[QcPair, ...], predictions_dir: Path, *, subfolders: bool = False
) -> dict[str, Path]:
    """Find the precomputed label image of every pair in ``predictions_dir``.

    Predictions are matched like targets: same file name, ``.tif``/``.tiff`` in any case.

    Returns
    -------
    dict
        Pair name -> prediction file.

    Raises
    ------
    PairingError
        The folder is missing or empty, or some pairs have no prediction (all listed).
    """
    problems: list[str] = []
    found, _ = _list_tiffs(predictions_dir, "predictions", problems, subfolders=subfolders)
    missing = sorted(pair.name for pair in pairs if pair.stem not in found)
    if found and missing:
        problems.append(f"no prediction in {predictions_dir} for: {', '.join(missing)}")
    if problems:
        raise PairingError(problems)
    return {pair.name: found[pair.stem] for pair in pairs}
