"""Read ``thresholds.yaml`` and turn every problem into a message a user can act on::

    thresholds.yaml: per_image.f1_score: unknown metric; did you mean 'f1'?
    thresholds.yaml:7:3: YAML syntax error: mapping values are not allowed here
    thresholds.yaml:9:5: duplicate key 'min' (also at line 8); ...

Every problem is reported at once, through :class:`ThresholdsError`, which the plugin
turns into a ``pytest.UsageError`` (exit code 4).

The file is parsed with ``yaml.safe_load``'s loader and constructors, made stricter
(:class:`_StrictLoader`) because a gate must never judge against limits other than those
written, nor hang on a hostile file:

* a key given twice in one mapping is an error (YAML keeps the last one silently, so a
  ``min: 0.99`` could vanish);
* lists and mappings may nest :data:`~segqc.data.config_files.MAX_NESTING` levels deep;
* the document, aliases (``*name``) expanded, may have at most :data:`MAX_YAML_NODES`
  nodes: a few hundred bytes of nested aliases (a "billion laughs" bomb) would otherwise
  expand to billions of values. Anchors and aliases used normally stay well under it.
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

from segqc.data.config_files import MAX_NESTING, ConfigFileError, read_config_text
from segqc.thresholds.schema import LIMIT_SCOPES, Thresholds

__all__ = [
    "MAX_YAML_NODES",
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
    """Read ``path`` with ``yaml.safe_load``'s loader, made stricter, and validate it.

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
        File missing, unreadable, not a regular file, larger than 1 MiB, not YAML, with a
        key given twice, nested too deeply, expanding past :data:`MAX_YAML_NODES` nodes,
        empty, or not matching the schema. The message names the file, the key path (or
        the line) and the fix, one problem per line.
    """
    name = str(path)
    try:
        text = read_config_text(path, what="thresholds file")
    except FileNotFoundError:
        raise ThresholdsError(
            f"{name}: file not found; give an existing file with --thresholds "
            "(the bundled default is used only when no --thresholds is given)"
        ) from None
    except ConfigFileError as exc:
        raise ThresholdsError(str(exc)) from None
    try:
        document = yaml.load(text, Loader=_StrictLoader)  # safe_load with stricter checks
    except _DocumentRefused as exc:
        where = f"{name}:{exc.line}" if exc.line is not None else name
        raise ThresholdsError(f"{where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else name
        problem = getattr(exc, "problem", None) or str(exc)
        raise ThresholdsError(f"{where}: YAML syntax error: {problem}") from None
    except RecursionError:  # defence in depth: _StrictLoader bounds the nesting first
        raise ThresholdsError(_too_deep(name)) from None
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
    except RecursionError:  # defence in depth, as above
        raise ThresholdsError(_too_deep(name)) from None
    return LoadedThresholds(thresholds, path, text, is_bundled_default)


_TOO_DEEP = (
    f"lists or mappings nested more than {MAX_NESTING} levels deep; "
    "a thresholds file nests three or four"
)


def _too_deep(name: str) -> str:
    return f"{name}: {_TOO_DEEP}"


#: The most nodes (mappings, lists and scalars) a thresholds document may have once its
#: aliases are expanded. The bundled thresholds.yaml has about 60; a "billion laughs"
#: alias bomb of a few hundred bytes expands to hundreds of millions.
MAX_YAML_NODES = 10_000

_MERGE_TAG = "tag:yaml.org,2002:merge"

_TOO_MANY_NODES = (
    f"more than {MAX_YAML_NODES:,} YAML nodes once aliases (*name) are expanded, the most "
    "segqc accepts (a thresholds file has a few hundred); an alias bomb? Write the "
    "limits out instead"
)


class _DocumentRefused(yaml.YAMLError):
    """A well-formed YAML document segqc refuses to construct (see :class:`_StrictLoader`)."""

    def __init__(self, problem: str, line: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = line


class _StrictLoader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader (the same safe constructors, no others), made stricter.

    Composing (which makes one node per anchor, shared by its aliases) bounds the nesting
    and the number of nodes; before anything is constructed, the node graph is walked once
    to refuse duplicate keys, recursive aliases and documents that expand past
    :data:`MAX_YAML_NODES` nodes.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._composed = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        # Composing recurses once per level: refuse deep nesting before Python's stack does.
        # Every call (an alias too) is at least one node of the expanded document, so the
        # node limit also stops a long flat file early: pure-Python YAML is slow.
        self._depth += 1
        self._composed += 1
        try:
            if self._depth > MAX_NESTING:
                raise _DocumentRefused(_TOO_DEEP, self.peek_event().start_mark.line + 1)
            if self._composed > MAX_YAML_NODES:
                raise _DocumentRefused(_TOO_MANY_NODES)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: yaml.Node) -> Any:
        self._check_graph(node)
        return super().construct_document(node)

    def _check_graph(self, root: yaml.Node) -> None:
        """Walk the node graph once, depth first without recursion, counting each node's
        expanded size once (aliases share nodes, so shared subtrees are counted, not
        walked, again)."""
        sizes: dict[int, int] = {}
        started: set[int] = set()  # begun but not finished: the current node's ancestors
        pending: list[tuple[yaml.Node, bool]] = [(root, False)]
        while pending:
            node, finished = pending.pop()
            key = id(node)
            children = _children(node)
            if finished:
                started.discard(key)
                sizes[key] = 1 + sum(sizes[id(child)] for child in children)
                if sizes[key] > MAX_YAML_NODES:
                    raise _DocumentRefused(_TOO_MANY_NODES)
                continue
            if key in sizes:
                continue
            if key in started:
                raise _DocumentRefused(
                    "this list or mapping contains an alias (*name) of itself; "
                    "thresholds cannot be recursive",
                    node.start_mark.line + 1,
                )
            started.add(key)
            if isinstance(node, yaml.MappingNode):
                self._refuse_duplicate_keys(node)
            pending.append((node, True))
            pending.extend((child, False) for child in children if id(child) not in sizes)

    def _refuse_duplicate_keys(self, node: yaml.MappingNode) -> None:
        # Keys a merge (<<: *name) brings in may be overridden: only the mapping's own keys
        # must be unique.
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue  # a list or mapping as a key is refused when constructing
            key = self._key_of(key_node)
            first = seen.setdefault(key, key_node)
            if first is not key_node:
                raise _DocumentRefused(
                    f"duplicate key '{key_node.value}' (also at line "
                    f"{first.start_mark.line + 1}); YAML would keep only the last value, "
                    "so remove one of them",
                    key_node.start_mark.line + 1,
                )

    def _key_of(self, node: yaml.ScalarNode) -> Any:
        """The key as the constructed mapping will hold it (``1`` and ``0x1`` collide)."""
        try:
            key = self.construct_object(node)
            hash(key)
        except (yaml.YAMLError, TypeError, ValueError):
            return (node.tag, node.value)  # constructing will report it
        return key


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return []


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
