"""Read ``thresholds.yaml`` and turn every problem into a message a user can act on::

    thresholds.yaml: per_image.f1_score: unknown metric; did you mean 'f1'?
    thresholds.yaml:7:3: YAML syntax error: mapping values are not allowed here

Every problem is reported at once, through :class:`ThresholdsError`, which the plugin
turns into a ``pytest.UsageError`` (exit code 4).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from segqc.thresholds.schema import LIMIT_SCOPES, Thresholds

__all__ = [
    "LoadedThresholds",
    "ThresholdsError",
    "bundled_thresholds_path",
    "closest_key",
    "load_thresholds",
]


class ThresholdsError(ValueError):
    """thresholds.yaml is missing, unreadable or invalid; the message lists every problem."""


@dataclass(frozen=True)
class LoadedThresholds:
    """Validated thresholds plus where they came from (shown in the report)."""

    thresholds: Thresholds
    path: Path
    text: str
    is_bundled_default: bool


def bundled_thresholds_path() -> Path:
    """Path of the thresholds.yaml shipped with segqc (used when the rootdir has none)."""
    return Path(str(resources.files("segqc") / "resources" / "thresholds.yaml"))


def load_thresholds(path: Path, *, is_bundled_default: bool = False) -> LoadedThresholds:
    """Read ``path`` with ``yaml.safe_load`` and validate it.

    Parameters
    ----------
    path : Path
        The thresholds file.
    is_bundled_default : bool
        Recorded in the result so outputs can say the bundled defaults were used.

    Returns
    -------
    LoadedThresholds

    Raises
    ------
    ThresholdsError
        File missing, unreadable, not YAML, empty, or not matching the schema. The message
        names the file, the key path and the fix, one problem per line.
    """
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ThresholdsError(
            f"{name}: file not found; give an existing file with --thresholds "
            "(the bundled default is used only when no --thresholds is given)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ThresholdsError(f"{name}: cannot read the file ({exc})") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else name
        problem = getattr(exc, "problem", None) or str(exc)
        raise ThresholdsError(f"{where}: YAML syntax error: {problem}") from None
    if document is None:
        raise ThresholdsError(
            f"{name}: the file is empty; add at least one section (e.g. 'per_image:') — "
            "the bundled thresholds.yaml documents every key"
        )
    if not isinstance(document, dict):
        raise ThresholdsError(
            f"{name}: expected a mapping of sections (matching, per_image, ...), "
            f"got a {type(document).__name__}"
        )
    try:
        thresholds = Thresholds.model_validate(document)
    except ValidationError as exc:
        raise ThresholdsError("\n".join(_describe_errors(name, exc))) from None
    return LoadedThresholds(thresholds, path, text, is_bundled_default)


def _describe_errors(name: str, exc: ValidationError) -> Iterator[str]:
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        key_path = ".".join(loc)
        if error["type"] == "extra_forbidden":
            yield f"{name}: {key_path}: {_unknown_key_message(loc)}"
        elif error["type"] in {"model_type", "model_attributes_type"}:
            yield f"{name}: {key_path}: expected a mapping, got {_show(error['input'])}"
        else:
            message = error["msg"].removeprefix("Value error, ")
            yield f"{name}: {key_path}: {message} (got {_show(error['input'])})"


def _unknown_key_message(loc: tuple[str, ...]) -> str:
    model: type[BaseModel] = Thresholds
    for part in loc[:-1]:
        if part not in model.model_fields:
            continue  # a key of a mapping section (an IoU threshold of aggregate_at)
        annotation = model.model_fields[part].annotation
        model = _model_in(annotation)
    valid = list(model.model_fields)
    what = {1: "unknown section", 2: "unknown metric" if loc[0] in LIMIT_SCOPES else "unknown key"}
    kind = "unknown metric" if loc[0] == "aggregate_at" else what.get(len(loc), "unknown key")
    close = closest_key(loc[-1], valid)
    hint = f"did you mean '{close}'?" if close else f"valid keys: {', '.join(valid)}"
    return f"{kind}; {hint}"


def closest_key(typo: str, valid: list[str]) -> str | None:
    """The valid key a typo most likely meant: containment first, then edit similarity.

    ``f1_score`` -> ``f1`` and ``iou`` -> ``iou_threshold`` (containment), ``pixeliou`` ->
    ``pixel_iou`` (similarity); None when nothing is close.
    """
    lowered = typo.lower()
    containing = [key for key in valid if key in lowered or lowered in key]
    if containing:
        return max(containing, key=len)
    close = difflib.get_close_matches(lowered, valid, n=1, cutoff=0.6)
    return close[0] if close else None


def _model_in(annotation: Any) -> type[BaseModel]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    raise TypeError(f"no pydantic model in {annotation!r}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
