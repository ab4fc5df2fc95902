"""Read the small files a user hands segqc, safely: thresholds.yaml, a model's config.json
and thresholds.json, a baseline file, a ``--qc-groups`` CSV.

A gate must not hang, fill the memory or crash with a traceback on a wrong path or a
hostile file, so every such file is read through :func:`read_config_text`, which

* refuses anything but a regular file *before reading it*, without blocking: a named pipe
  (FIFO) would wait forever for a writer, ``/dev/zero`` never ends, a folder cannot be read;
* reads at most :data:`MAX_CONFIG_BYTES` (1 MiB) plus one byte and refuses a larger file:
  the largest of these files is a baseline of a few hundred images, well under 1 MiB;
* reports every problem as a :class:`ConfigFileError`, one line naming the file.

:func:`load_json` parses JSON text with the nesting bounded by :data:`MAX_NESTING`, so a
deeply nested file gives a message instead of a ``RecursionError`` (there, or later when
the value is written out again). This module imports nothing from segqc, so any layer may
use it.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_NESTING",
    "ConfigFileError",
    "describe_size",
    "load_json",
    "open_regular_file",
    "read_config_text",
]

#: The most bytes segqc reads from a configuration file (1 MiB).
MAX_CONFIG_BYTES = 1 << 20

#: The deepest nesting of lists and mappings segqc accepts in a configuration file. Real
#: files nest five levels at most; the Python parsers overflow their stack at a few hundred.
MAX_NESTING = 100


class ConfigFileError(ValueError):
    """A configuration file cannot be used; the message is one line naming the file."""


def describe_size(n_bytes: int) -> str:
    """``1048576`` -> ``'1 MiB'``: a byte count as people write it in messages."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n_bytes >= size and n_bytes % size == 0:
            return f"{n_bytes // size} {unit}"
    return f"{n_bytes} bytes"


def _kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def open_regular_file(path: Path, *, what: str) -> BinaryIO:
    """Open ``path`` for binary reading, refusing anything that is not a regular file.

    The file is opened without blocking (a FIFO with no writer would block ``open``) and
    checked with ``fstat`` on the open descriptor, so what is checked is what is read.

    Parameters
    ----------
    path : Path
        The file; symbolic links are followed.
    what : str
        What the file is, for messages ("thresholds file", "model config", ...).

    Returns
    -------
    BinaryIO
        The open file; the caller closes it.

    Raises
    ------
    FileNotFoundError
        Nothing at ``path`` (callers say what to do in their own words).
    ConfigFileError
        Not a regular file, or cannot be opened (permissions, a symbolic-link loop, ...).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot open the {what} ({exc.strerror})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ConfigFileError(_not_regular(path, _kind_of(mode), what))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _not_regular(path: Path, kind: str, what: str) -> str:
    return f"{path}: is {kind}, not a {what}; segqc reads only regular files"


def read_config_text(
    path: Path,
    *,
    what: str,
    max_bytes: int = MAX_CONFIG_BYTES,
    encoding: str = "utf-8",
) -> str:
    """The text of a small configuration file, read safely (see the module docstring).

    Parameters
    ----------
    path : Path
        The file.
    what : str
        What the file is, for messages ("thresholds file", "baseline file", ...).
    max_bytes : int
        The largest file accepted; at most ``max_bytes + 1`` bytes are ever read.
    encoding : str
        The text encoding (``"utf-8-sig"`` also accepts a byte-order mark).

    Returns
    -------
    str

    Raises
    ------
    FileNotFoundError
        Nothing at ``path``.
    ConfigFileError
        Not a regular file, unreadable, larger than ``max_bytes`` or not valid text in
        ``encoding``; one line naming the file and what to do.
    """
    with open_regular_file(path, what=what) as handle:
        try:
            data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise ConfigFileError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    if len(data) > max_bytes:
        raise ConfigFileError(
            f"{path}: larger than {describe_size(max_bytes)}, the most segqc reads from a "
            f"{what}; check that this is the right file"
        )
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigFileError(
            f"{path}:{line}: not UTF-8 text ({exc.reason}); save the {what} as UTF-8"
        ) from None


def load_json(text: str, path: Path, *, max_nesting: int = MAX_NESTING) -> Any:
    """Parse JSON text, refusing lists and objects nested deeper than ``max_nesting``.

    Parameters
    ----------
    text : str
        The JSON text (from :func:`read_config_text`).
    path : Path
        The file it came from, for messages.
    max_nesting : int
        The deepest nesting accepted.

    Returns
    -------
    Any
        The parsed value.

    Raises
    ------
    json.JSONDecodeError
        Not JSON; callers word the message (they name the line and column).
    ConfigFileError
        Nested deeper than ``max_nesting``.
    """
    try:
        value = json.loads(text)
    except RecursionError:  # the parser's own stack ran out, far deeper than the limit
        value = None
        too_deep = True
    else:
        too_deep = _nested_deeper_than(value, max_nesting)
    if too_deep:
        raise ConfigFileError(
            f"{path}: lists or objects nested more than {max_nesting} levels deep; "
            "this is not a file segqc or StarDist wrote"
        )
    return value


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether lists/dicts in ``value`` nest deeper than ``limit`` (iteratively: no stack)."""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth + 1 > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False
