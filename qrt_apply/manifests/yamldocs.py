"""Read YAML documents and remember the line of every key and item.

A document comes back as plain Python data plus a map from JSON path (a tuple of keys and indexes)
to a 1-based line number, so every later error can point at ``file:line``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from qrt_apply.errors import ManifestError

__all__ = ["Document", "JsonPath", "load_documents"]

JsonPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Document:
    data: Any
    path: str  # repository-relative file path, for messages
    lines: dict[JsonPath, int]
    start_line: int

    def line_of(self, json_path: JsonPath) -> int:
        """The line of ``json_path``, or of its nearest ancestor that has one."""
        path = tuple(json_path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.start_line


def _walk(node: yaml.Node, path: JsonPath, lines: dict[JsonPath, int], file: str) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise ManifestError(f"duplicate key {key!r}", file, key_node.start_mark.line + 1)
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), lines, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines, file)


def load_documents(text: str, path: str) -> list[Document]:
    """Parse every document of a (multi-document) YAML file; empty documents are skipped."""
    documents: list[Document] = []
    loader = yaml.SafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            lines: dict[JsonPath, int] = {}
            _walk(node, (), lines, path)
            data = loader.construct_document(node)
            if data is None:
                continue
            documents.append(Document(data, path, lines, node.start_mark.line + 1))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        raise ManifestError(f"invalid YAML: {problem}", path, line) from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"invalid YAML: {exc}", path) from None
    finally:
        loader.dispose()
    return documents
