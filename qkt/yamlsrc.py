"""YAML with positions: load a document and remember the line and column of every key.

PyYAML forgets where values came from once it builds Python objects; user-facing errors must name the
line (SPEC §3.2, §6.2). :func:`load_yaml` composes the node tree, builds plain Python data from it and
records ``(line, column)`` (1-based) for every mapping key and sequence item, addressed by its key path.
Duplicate keys, which PyYAML silently overwrites, are reported instead.

Work is bounded whatever the text: a document builds at most :data:`MAX_VALUES` values, each use
of an alias counting every value it repeats (so "billion laughs" aliases are refused, at the alias
that crosses the budget, before anything is built), and nests at most :data:`MAX_DEPTH` levels.
Files are read through :mod:`qkt.textfile` (regular files of at most 1 MiB).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import yaml

from qkt.diagnostics import Diagnostic, error

KeyPath = tuple[str | int, ...]

MAX_VALUES = 100_000
"""The most values (mappings, sequences, keys and scalars) one YAML document may build."""
MAX_DEPTH = 64
"""The deepest nesting of mappings and sequences a YAML document may have."""
_TOO_LARGE = f"the document builds more than {MAX_VALUES:,} values"
_TOO_DEEP = f"the document nests deeper than {MAX_DEPTH} levels"

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_COLLECTION_START = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_COLLECTION_END = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


class _TooMuch(Exception):
    """Unwinds the builder when the document is too large, too deep, or holds a value that
    cannot be built (already reported)."""


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
        self.built = 0
        self.merged: dict[int, int] = {}  # mapping node -> how many of its pairs `<<` merged in

    def count(self, node: yaml.Node, depth: int) -> None:
        self.built += 1
        if self.built > MAX_VALUES:
            self.problems = [self._at(node, "yaml-too-large", _TOO_LARGE)]
            raise _TooMuch
        if depth > MAX_DEPTH:
            self.problems = [self._at(node, "yaml-too-deep", _TOO_DEEP)]
            raise _TooMuch

    def build(self, node: yaml.Node, keypath: KeyPath, depth: int = 1) -> Any:
        if isinstance(node, yaml.MappingNode):
            self.count(node, depth)
            merged = self.merged.get(id(node))
            if merged is None:
                own = sum(k.tag != "tag:yaml.org,2002:merge" for k, _ in node.value)
                self.loader.flatten_mapping(node)  # resolves `<<` merge keys like PyYAML does
                merged = self.merged[id(node)] = len(node.value) - own
            out: dict[Hashable, Any] = {}
            # Its own keys first, then the merged ones, the last merged first: the first one
            # built wins, as in YAML's merge (own keys, then later merges, override).
            pairs = [*node.value[merged:], *reversed(node.value[:merged])]
            for index, (key_node, value_node) in enumerate(pairs):
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problems.append(
                        self._at(key_node, "yaml-bad-key", "a key must be a scalar")
                    )
                    continue
                self.count(key_node, depth)
                key = self.scalar(key_node)
                if not isinstance(key, Hashable) or isinstance(key, (list, dict)):
                    self.problems.append(
                        self._at(key_node, "yaml-bad-key", "a key must be a scalar")
                    )
                    continue
                name = key if isinstance(key, str) else str(key)
                child = (*keypath, name)
                mark = key_node.start_mark
                if name in out:
                    if index >= len(pairs) - merged:
                        continue  # merged in, and set by the mapping itself or an earlier merge
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
                out[name] = self.build(value_node, child, depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            self.count(node, depth)
            items = []
            for index, item in enumerate(node.value):
                child = (*keypath, index)
                self.doc.positions[child] = (item.start_mark.line + 1, item.start_mark.column + 1)
                items.append(self.build(item, child, depth + 1))
            return items
        self.count(node, 0)
        return self.scalar(node)

    def scalar(self, node: yaml.Node) -> Any:
        """A scalar's value. One its tag cannot make (``!!timestamp x``, ``!!bool maybe``, an
        integer of more than 4,300 digits) is an error at the value: PyYAML's constructors fail
        on them with ValueError, and with KeyError or AttributeError for some tags."""
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            text = str(node.value)
            shown = text if len(text) <= 20 else text[:17] + "..."
            reason = "too many digits" if "digits" in str(exc) else None
            if reason is None and isinstance(exc, ValueError):
                reason = str(exc).splitlines()[0]
            message = f"invalid YAML: `{shown}` is not a valid {tag}"
            self.problems.append(
                self._at(node, "yaml-syntax", f"{message} ({reason})" if reason else message)
            )
            raise _TooMuch from None

    def _at(self, node: yaml.Node, code: str, message: str) -> Diagnostic:
        mark = node.start_mark
        return error(code, message, path=self.doc.path, line=mark.line + 1, column=mark.column + 1)


def _prescan(text: str, path: str) -> Diagnostic | None:
    """Refuse a document whose aliases would build more than :data:`MAX_VALUES` values, or that
    nests deeper than :data:`MAX_DEPTH` levels.

    One pass over the parser's events, counting what each anchor holds, so nothing is expanded;
    the error names the alias that crosses the budget. Size and depth are judged here, before a
    node is composed: composing is what costs (seconds for a few hundred thousand values), and
    the composer recurses, so tens of thousands of levels (`[[[[...`) would overflow its stack.
    Syntax errors are left to the real load.
    """
    loader = _Loader(text)
    sizes: dict[str, int] = {}
    frames: list[tuple[str | None, list[int]]] = []  # open collections: anchor, [values so far]
    total = 0
    try:
        while loader.check_event():
            event: Any = loader.get_event()  # type: ignore[no-untyped-call]
            if isinstance(event, _COLLECTION_START):
                if len(frames) >= MAX_DEPTH:
                    return _at_event(event, path, "yaml-too-deep", _TOO_DEEP)
                frames.append((event.anchor, [1]))
                total += 1
                if total > MAX_VALUES:
                    return _at_event(event, path, "yaml-too-large", _TOO_LARGE)
                continue
            if isinstance(event, _COLLECTION_END):
                anchor, (count,) = frames.pop()
                if anchor is not None:
                    sizes[anchor] = count
                if frames:
                    frames[-1][1][0] += count
                continue
            if isinstance(event, yaml.ScalarEvent):
                size = 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            elif isinstance(event, yaml.AliasEvent):
                anchor = event.anchor or ""
                mark: Any = event.start_mark
                where = {"path": path, "line": mark.line + 1, "column": mark.column + 1}
                if any(open_anchor == anchor for open_anchor, _ in frames):
                    return error(
                        "yaml-recursive-alias",
                        f"the alias `*{anchor}` is inside the value it names: it never ends",
                        **where,
                    )
                size = sizes.get(anchor, 1)  # an undefined alias: the real load reports it
                if total + size > MAX_VALUES:
                    return error(
                        "yaml-too-large",
                        f"the alias `*{anchor}` repeats {size:,} values: the document would "
                        f"build more than {MAX_VALUES:,}",
                        hint="write the values out, or use fewer aliases",
                        **where,
                    )
            else:
                continue
            total += size
            if total > MAX_VALUES:
                return _at_event(event, path, "yaml-too-large", _TOO_LARGE)
            if frames:
                frames[-1][1][0] += size
    except yaml.MarkedYAMLError as exc:
        # PyYAML 6.0.4 and later stop scanning at a depth of their own (1,000 flow levels),
        # before the parser hands over the event that crosses ours: the same refusal.
        if "nesting depth" not in str(exc.problem or ""):
            return None  # a syntax error: left to the real load
        mark = exc.problem_mark
        where = {"line": mark.line + 1, "column": mark.column + 1} if mark is not None else {}
        return error("yaml-too-deep", _TOO_DEEP, path=path, **where)
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()
    return None


def _at_event(event: Any, path: str, code: str, message: str) -> Diagnostic:
    mark = event.start_mark
    return error(code, message, path=path, line=mark.line + 1, column=mark.column + 1)


def load_yaml(text: str, path: str) -> tuple[YamlDoc | None, list[Diagnostic]]:
    """Parse ``text``; on a syntax error return ``None`` and one positioned diagnostic."""
    doc = YamlDoc(None, path)
    refused = _prescan(text, path)
    if refused is not None:
        return None, [refused]
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return doc, []
        doc.positions[()] = (node.start_mark.line + 1, node.start_mark.column + 1)
        builder = _Builder(loader, doc)
        try:
            doc.data = builder.build(node, ())
        except _TooMuch:
            return None, builder.problems
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
        message = f"invalid YAML: {exc}".splitlines()[0]
        return None, [error("yaml-syntax", message, path=path, line=1, column=1)]
    finally:
        loader.dispose()


def read_yaml(path: str, display: str | None = None) -> tuple[YamlDoc | None, list[Diagnostic]]:
    """Read and parse a YAML file; unreadable files become a diagnostic too."""
    from qkt.textfile import read_text

    shown = display or path
    text = read_text(path, shown, code="yaml-encoding")
    if isinstance(text, Diagnostic):
        return None, [text]
    return load_yaml(text, shown)
