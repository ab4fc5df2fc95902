"""Options as pytest users type them: ``--model /abs/model`` means ``--model=/abs/model``.

pytest chooses its rootdir and ini file from the command line's test paths *before* any
plugin's options exist. So in ``pytest --model /data/model --qc-target /data/gt``,
pytest takes ``/data/model`` and ``/data/gt`` for test paths: the rootdir becomes their
common folder (often ``/``), and the project's ini file and ``thresholds.yaml`` are not
read. The ``=`` form (``--model=/data/model``) does not have this problem.

segqc cannot change pytest's choice, so it checks it (:func:`misread_rootdir`): it
parses the same command line again, now knowing segqc's options, lets pytest decide the
rootdir from the real test paths, and compares. When the two differ the run stops with
exit code 4 and says how to write it. The ``segqc`` command (:mod:`segqc.cli`) writes
the options in the ``=`` form itself (:func:`joined_path_options`).
"""

from __future__ import annotations

import inspect
import itertools
import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segqc.settings import PATH_OPTIONS

if TYPE_CHECKING:
    import pytest

__all__ = ["joined_path_options", "misread_rootdir", "spaced_path_options"]

_NAMES = tuple(option for option, _, _ in PATH_OPTIONS)


def spaced_path_options(args: Sequence[str]) -> list[tuple[str, str]]:
    """segqc's path options given as two words (``--model DIR``), as (option, value)."""
    found = []
    for option, value in itertools.pairwise(args):
        if option in _NAMES and not value.startswith("-"):
            found.append((option, value))
    return found


def joined_path_options(args: Sequence[str]) -> list[str]:
    """``args`` with every segqc path option written as one word (``--model=DIR``)."""
    joined: list[str] = []
    index = 0
    while index < len(args):
        word = args[index]
        if word in _NAMES and index + 1 < len(args) and not args[index + 1].startswith("-"):
            joined.append(f"{word}={args[index + 1]}")
            index += 2
        else:
            joined.append(word)
            index += 1
    return joined


def _decide(config: pytest.Config, args: Sequence[str]) -> tuple[Path, Path | None]:
    """The rootdir and ini file pytest picks for these test paths, as pytest picks them."""
    from _pytest.config.findpaths import determine_setup

    options: dict[str, Any] = {
        "inifile": config.option.inifilename,
        "args": list(args),
        "rootdir_cmd_arg": config.option.rootdir or None,
        "invocation_dir": config.invocation_params.dir,
    }
    accepted = inspect.signature(determine_setup).parameters
    if "override_ini" in accepted:  # pytest 9
        options["override_ini"] = config.option.override_ini
    found = determine_setup(**{k: v for k, v in options.items() if k in accepted})
    return Path(found[0]), found[1]


def misread_rootdir(config: pytest.Config) -> str | None:
    """Why this run's rootdir is not the one its options mean, or None when it is.

    Returns
    -------
    str or None
        One line: which options pytest read as test paths, the rootdir and ini file it
        chose, the ones the user meant, and how to fix the command line.
    """
    args = [*shlex.split(os.environ.get("PYTEST_ADDOPTS", "")), *config.invocation_params.args]
    spaced = spaced_path_options(args)
    if not spaced:
        return None
    try:
        # The same words parsed again, now that segqc's options are known: the values of
        # --model and friends are no longer test paths.
        namespace = config._parser.parse_known_args(args)
        meant = _decide(config, getattr(namespace, "file_or_dir", None) or [])
    except Exception:  # pytest's internals moved: better no check than a false alarm
        return None
    if meant == (config.rootpath, config.inipath):
        return None
    words = ", ".join(f"{option} {value}" for option, value in spaced)
    fixed = " ".join(f"{option}={value}" for option, value in spaced)
    ini = str(config.inipath) if config.inipath else "no ini file"
    meant_ini = str(meant[1]) if meant[1] else "no ini file"
    return (
        f"pytest read {words} as test paths and chose the rootdir {config.rootpath} "
        f"({ini}), not {meant[0]} ({meant_ini}), so other limits and other tests than you "
        f"meant would run; write {fixed} (with '='), or run the same options with the "
        "segqc command"
    )
