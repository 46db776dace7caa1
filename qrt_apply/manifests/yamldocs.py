"""Read YAML documents, bounded, and remember the line of every key and item.

A document comes back as plain Python data plus a map from JSON path (a tuple of keys and indexes)
to a 1-based line number, so every later error can point at ``file:line``.

Parsing uses libyaml's C parser when PyYAML was built with it (about 7x faster), else the pure
Python one; both feed the same Python composer below, so data, lines and limits do not depend on
which one ran. The composer is where hostile input is stopped, before anything grows: aliases are
refused (an alias bomb expands exponentially, and the example manifests use none), and nesting
depth and the number of nodes are capped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from qrt_apply.errors import ManifestError

__all__ = ["HAVE_LIBYAML", "Document", "JsonPath", "YamlLimits", "load_documents"]

JsonPath = tuple[str | int, ...]

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"

try:
    from yaml.cyaml import CParser as _CParser  # type: ignore[attr-defined]

    HAVE_LIBYAML = True
except ImportError:  # PyYAML built without libyaml
    HAVE_LIBYAML = False


@dataclass(frozen=True)
class YamlLimits:
    max_depth: int = 64
    max_nodes: int = 250_000


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


class _Bounded(Composer, SafeConstructor, Resolver):
    """Composer and safe constructor with the checks; mixed with either parser below."""

    def _setup(self, file: str, limits: YamlLimits) -> None:
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._file = file
        self._limits = limits
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[attr-defined]
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            raise ManifestError(
                f"YAML alias *{event.anchor} is not supported (anchors and aliases are refused); "
                "write the value out",
                self._file,
                line,
            )
        self._nodes += 1
        if self._nodes > self._limits.max_nodes:
            raise ManifestError(
                f"more than {self._limits.max_nodes} YAML nodes in one file "
                "(qrt.yaml limits.max_yaml_nodes)",
                self._file,
                line,
            )
        if not isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            node = super().compose_node(parent, index)
            return node
        self._depth += 1
        if self._depth > self._limits.max_depth:
            raise ManifestError(
                f"nested deeper than {self._limits.max_depth} levels (qrt.yaml limits.max_depth)",
                self._file,
                line,
            )
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # A scalar the resolver accepts can still fail to build (2001-13-45, a 5,000-digit int).
        try:
            return super().construct_object(node, deep)  # type: ignore[no-untyped-call]
        except (ValueError, TypeError, OverflowError) as exc:
            raise ManifestError(
                f"invalid value: {exc}", self._file, node.start_mark.line + 1
            ) from None


if HAVE_LIBYAML:

    class _Loader(_Bounded, _CParser):
        def __init__(self, text: str, file: str, limits: YamlLimits) -> None:
            _CParser.__init__(self, text)
            self._setup(file, limits)

else:  # pragma: no cover - exercised where PyYAML lacks libyaml
    _Loader = None  # type: ignore[assignment,misc]


class _PureLoader(_Bounded, yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
    def __init__(self, text: str, file: str, limits: YamlLimits) -> None:
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        self._setup(file, limits)


def _walk(node: yaml.Node, path: JsonPath, lines: dict[JsonPath, int], file: str) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            # Keys other than strings (1, true, null, [a]) break the line map and, later, sorting
            # and JSON; quoting them is all a manifest needs.
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in (
                _STR_TAG,
                _MERGE_TAG,
            ):
                shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                raise ManifestError(f"mapping key {shown!r} is not a string; quote it", file, line)
            key = key_node.value
            if key in seen:
                raise ManifestError(f"duplicate key {key!r}", file, line)
            seen.add(key)
            lines[(*path, key)] = line
            _walk(value_node, (*path, key), lines, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines, file)


def load_documents(
    text: str, path: str, *, limits: YamlLimits | None = None, pure: bool = False
) -> list[Document]:
    """Parse every document of a (multi-document) YAML file; empty documents are skipped.

    ``pure`` forces the pure Python parser (the tests compare the two)."""
    limits = limits or YamlLimits()
    documents: list[Document] = []
    loader: _Bounded | None = None
    try:
        # Inside the try: the pure reader checks every character as it is made.
        loader = (
            _PureLoader(text, path, limits)
            if pure or _Loader is None
            else _Loader(text, path, limits)
        )
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            lines: dict[JsonPath, int] = {}
            _walk(node, (), lines, path)
            data = loader.construct_document(node)  # type: ignore[no-untyped-call]
            if data is None:
                continue
            documents.append(Document(data, path, lines, node.start_mark.line + 1))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        raise ManifestError(f"invalid YAML: {problem}", path, line) from None
    except yaml.reader.ReaderError as exc:
        # Unacceptable characters: a position, not a mark.
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else None
        raise ManifestError(f"invalid YAML: {exc.reason}", path, line) from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"invalid YAML: {exc}", path) from None
    finally:
        if loader is not None:
            loader.dispose()  # type: ignore[attr-defined]
    return documents
