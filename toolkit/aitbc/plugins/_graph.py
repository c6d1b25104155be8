"""Dependency ordering: cycles, and the start-up waves the manager runs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A dependency cycle as ``[a, b, a]``, or None.  Edges to unknown nodes are ignored."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if state.get(root):
            continue
        path: list[str] = [root]
        stack = [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            node = next(stack[-1], None)
            if node is None:
                stack.pop()
                state[path.pop()] = 2
                continue
            if node not in graph or state.get(node) == 2:
                continue
            if state.get(node) == 1:
                return [*path[path.index(node) :], node]
            state[node] = 1
            path.append(node)
            stack.append(iter(sorted(graph[node])))
    return None


def effective_priorities(
    graph: Mapping[str, Iterable[str]], priority: Mapping[str, int]
) -> dict[str, int]:
    """A dependency starts no later than its most urgent dependent.

    Lower numbers start first.  ``graph`` must be acyclic.
    """
    effective = dict(priority)
    changed = True
    while changed:  # converges in at most depth-of-graph rounds
        changed = False
        for node, deps in graph.items():
            for dep in deps:
                if dep in effective and effective[dep] > effective[node]:
                    effective[dep] = effective[node]
                    changed = True
    return effective


def priority_groups(
    graph: Mapping[str, Iterable[str]], priority: Mapping[str, int]
) -> list[list[str]]:
    """Nodes grouped by effective priority (ascending), each group in dependency order.

    Groups run one after another; inside a group every node may run as soon as its
    dependencies in that group are done, so independent ones run concurrently.
    """
    effective = effective_priorities(graph, priority)
    groups: dict[int, list[str]] = {}
    for node in topological_order(graph):
        groups.setdefault(effective[node], []).append(node)
    return [groups[p] for p in sorted(groups)]


def topological_order(graph: Mapping[str, Iterable[str]]) -> list[str]:
    """Dependencies before dependents; ties by name, for a stable order."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(node: str) -> None:
        stack = [(node, iter(sorted(graph.get(node, ()))))]
        seen.add(node)
        while stack:
            current, deps = stack[-1]
            dep = next(deps, None)
            if dep is None:
                stack.pop()
                order.append(current)
            elif dep in graph and dep not in seen:
                seen.add(dep)
                stack.append((dep, iter(sorted(graph.get(dep, ())))))

    for node in sorted(graph):
        if node not in seen:
            visit(node)
    return order
