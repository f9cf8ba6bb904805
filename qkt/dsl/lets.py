"""LET dependencies: the order to check LETs in, and the LETs that refer to themselves or loop.

A LET may use LETs declared before or after it. Everything here is iterative, so a long chain of
LETs cannot exhaust the stack.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence

from qkt.dsl import ast
from qkt.dsl.static import names_in

Report = Callable[[str, str, int, int], None]  # code, message, line, column


def let_order(
    lets: Sequence[ast.Let], shadowed: Container[str], report: Report
) -> tuple[list[str], set[str]]:
    """LET names with dependencies first, and the names that are in or depend on a cycle.

    ``shadowed`` are names that resolve to something else first (stream aliases, PARAMs).
    Self-references and cycles are reported through ``report``.
    """
    first: dict[str, ast.Let] = {}
    for let in lets:
        first.setdefault(let.name, let)
    rank = {name: n for n, name in enumerate(first)}
    deps: dict[str, list[str]] = {}
    for name, let in first.items():
        used = {n for n in names_in(let.expr) if n in first and n not in shadowed}
        deps[name] = sorted(used, key=rank.__getitem__)
    users: dict[str, list[str]] = {name: [] for name in first}
    waiting = {name: len(d) for name, d in deps.items()}
    for name, d in deps.items():
        for dep in d:
            users[dep].append(name)
    ready = [name for name in first if waiting[name] == 0]
    order: list[str] = []
    while ready:
        name = ready.pop()
        order.append(name)
        for user in users[name]:
            waiting[user] -= 1
            if waiting[user] == 0:
                ready.append(user)
    stuck = {name for name in first if waiting[name] > 0}
    _report_cycles(first, deps, stuck, report)
    return order, stuck


def _report_cycles(
    first: dict[str, ast.Let], deps: dict[str, list[str]], stuck: set[str], report: Report
) -> None:
    for name, let in first.items():
        if name in deps[name]:
            report("self-referencing-let", f"LET `{name}` refers to itself", let.line, let.column)
    done: set[str] = set()
    for name in first:
        if name not in stuck or name in done:
            continue
        path: list[str] = []
        index: dict[str, int] = {}
        node: str | None = name
        while node is not None and node not in index and node not in done:
            index[node] = len(path)
            path.append(node)
            node = next((d for d in deps[node] if d in stuck and d != node), None)
        done.update(path)
        if node is None or node not in index:
            continue  # only self-references, or ran into a cycle reported already
        cycle = path[index[node] :]
        let = first[min(cycle, key=lambda n: (first[n].line, first[n].column))]
        start = cycle.index(let.name)
        loop = [*cycle[start:], *cycle[:start], let.name]
        report(
            "let-cycle",
            "LETs refer to each other in a cycle: " + " -> ".join(f"`{n}`" for n in loop),
            let.line,
            let.column,
        )
