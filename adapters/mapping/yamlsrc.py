"""YAML loading that remembers line numbers, so mapping errors point at the rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from adapters.errors import MappingSyntaxError

LINE = "__line__"


class _LineLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML is untyped: SafeLoader is Any to mypy
    pass


# `.1` is a relative source path (component 1), not the float 0.1: no implicit float for '.'.
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if not (first == "." and tag.endswith(":float"))]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping: dict[str, Any] = loader.construct_mapping(node, deep=True)
    mapping[LINE] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingSyntaxError(f"cannot read mapping: {exc}", file=str(path)) from exc
    try:
        return yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise MappingSyntaxError(
            f"YAML does not parse: {exc}", file=str(path), line=mark.line + 1 if mark else None
        ) from exc


def strip_lines(value: Any) -> Any:
    """The same data without the line markers (for constants copied into output)."""
    if isinstance(value, dict):
        return {k: strip_lines(v) for k, v in value.items() if k not in (LINE, "__file__")}
    if isinstance(value, list):
        return [strip_lines(v) for v in value]
    return value
