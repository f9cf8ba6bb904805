"""YAML with positions: load a document and remember the line and column of every key.

PyYAML forgets where values came from once it builds Python objects; user-facing errors must name the
line (SPEC §3.2, §6.2). :func:`load_yaml` composes the node tree, builds plain Python data from it and
records ``(line, column)`` (1-based) for every mapping key and sequence item, addressed by its key path.
Duplicate keys, which PyYAML silently overwrites, are reported instead.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import yaml

from qkt.diagnostics import Diagnostic, error

KeyPath = tuple[str | int, ...]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(slots=True)
class YamlDoc:
    """Plain data (dicts, lists, scalars) plus the position of every key path in the file."""

    data: Any
    path: str
    positions: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)

    def where(self, keypath: KeyPath) -> tuple[int | None, int | None]:
        """Line and column of ``keypath``, or of its nearest ancestor that has one."""
        probe = tuple(keypath)
        while probe:
            hit = self.positions.get(probe)
            if hit is not None:
                return hit
            probe = probe[:-1]
        root = self.positions.get(())
        return (root[0], root[1]) if root is not None else (None, None)

    def line(self, keypath: KeyPath) -> int | None:
        return self.where(keypath)[0]

    def diag(self, code: str, message: str, keypath: KeyPath = (), **extra: Any) -> Diagnostic:
        """An error diagnostic positioned at ``keypath`` in this file."""
        line, column = self.where(keypath)
        return error(code, message, path=self.path, line=line, column=column, **extra)


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, doc: YamlDoc) -> None:
        self.loader = loader
        self.doc = doc
        self.problems: list[Diagnostic] = []

    def build(self, node: yaml.Node, keypath: KeyPath) -> Any:
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)  # resolves `<<` merge keys like PyYAML does
            out: dict[Hashable, Any] = {}
            for key_node, value_node in node.value:
                key = self.loader.construct_object(key_node, deep=True)
                if not isinstance(key, Hashable) or isinstance(key, (list, dict)):
                    self.problems.append(
                        self._at(key_node, "yaml-bad-key", "a key must be a scalar")
                    )
                    continue
                name = key if isinstance(key, str) else str(key)
                child = (*keypath, name)
                mark = key_node.start_mark
                if name in out:
                    first = self.doc.positions.get(child, (None, None))[0]
                    self.problems.append(
                        self._at(
                            key_node,
                            "yaml-duplicate-key",
                            f"duplicate key `{name}` (first defined on line {first})",
                        )
                    )
                    continue
                self.doc.positions[child] = (mark.line + 1, mark.column + 1)
                out[name] = self.build(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                child = (*keypath, index)
                self.doc.positions[child] = (item.start_mark.line + 1, item.start_mark.column + 1)
                items.append(self.build(item, child))
            return items
        return self.loader.construct_object(node, deep=True)

    def _at(self, node: yaml.Node, code: str, message: str) -> Diagnostic:
        mark = node.start_mark
        return error(code, message, path=self.doc.path, line=mark.line + 1, column=mark.column + 1)


def load_yaml(text: str, path: str) -> tuple[YamlDoc | None, list[Diagnostic]]:
    """Parse ``text``; on a syntax error return ``None`` and one positioned diagnostic."""
    doc = YamlDoc(None, path)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return doc, []
        doc.positions[()] = (node.start_mark.line + 1, node.start_mark.column + 1)
        builder = _Builder(loader, doc)
        doc.data = builder.build(node, ())
        return doc, builder.problems
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        return None, [
            error("yaml-syntax", f"invalid YAML: {problem}", path=path, line=line, column=column)
        ]
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        # ValueError/TypeError come from constructors (e.g. a timestamp like 2026-13-45).
        return None, [error("yaml-syntax", f"invalid YAML: {exc}".splitlines()[0], path=path)]
    finally:
        loader.dispose()


def read_yaml(path: str, display: str | None = None) -> tuple[YamlDoc | None, list[Diagnostic]]:
    """Read and parse a YAML file; unreadable files become a diagnostic too."""
    shown = display or path
    try:
        with open(path, encoding="utf-8") as fh:  # noqa: PTH123 - str paths are what callers hold
            text = fh.read()
    except UnicodeDecodeError:
        return None, [error("yaml-encoding", "file is not UTF-8 text", path=shown)]
    except OSError as exc:
        return None, [error("file-unreadable", f"cannot read file: {exc.strerror}", path=shown)]
    return load_yaml(text, shown)
