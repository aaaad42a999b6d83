"""An agent as a graph: slots as nodes, every way from one slot to another as a labelled edge.

Built once from an agent document (the JSON of `omnibot/agent@1`, as imported or exported, so it
works for any stored version), then rendered to Graphviz dot, Mermaid or a self-contained SVG.
Edges: `next`, buttons (their titles), condition rules and `else`, intents (their names),
`fallback`, `on_error`, `to`, and the agent's `on_timeout`. Slots that cannot be reached from
`start` (nor from `on_timeout`) are marked. Used by `omnibot agent graph` and the console's flow
diagram; pure.

    graph = build_graph(doc)
    render(graph, "svg")  # or "dot", "mermaid"
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from html import escape
from typing import Any, Final, Literal

import msgspec

Format = Literal["dot", "mermaid", "svg"]
FORMATS: Final = ("dot", "mermaid", "svg")
_LABEL_MAX: Final = 32


class Node(msgspec.Struct, frozen=True):
    id: str
    kind: str  # the slot type
    label: str  # a short summary of what the slot does
    reachable: bool = True
    start: bool = False


class Edge(msgspec.Struct, frozen=True):
    source: str
    target: str
    label: str  # "" for a plain `next`
    kind: Literal["next", "button", "rule", "else", "intent", "fallback", "error", "jump", "timeout"]
    dangling: bool = False  # the target is no slot of the agent


class Graph(msgspec.Struct, frozen=True):
    name: str
    start: str
    nodes: list[Node]
    edges: list[Edge]
    on_timeout: str | None = None

    @property
    def unreachable(self) -> list[str]:
        return [n.id for n in self.nodes if not n.reachable]


def _short(text: Any) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= _LABEL_MAX else flat[: _LABEL_MAX - 1] + "…"


def _edges_of(slot: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(target, label, kind) of one slot, in the order a reader expects."""
    found: list[tuple[str, str, str]] = []

    def add(target: Any, label: str, kind: str) -> None:
        if isinstance(target, str) and target:
            found.append((target, label, kind))

    for button in slot.get("buttons") or []:
        if isinstance(button, Mapping):
            add(button.get("next"), _short(button.get("title")), "button")
    for i, rule in enumerate(slot.get("rules") or []):
        if isinstance(rule, Mapping):
            add(rule.get("next"), _short(_rule_text(rule.get("if"))) or f"rule {i + 1}", "rule")
    if "else" in slot:
        add(slot.get("else"), "else", "else")
    for intent in slot.get("intents") or []:
        if isinstance(intent, Mapping):
            add(intent.get("next"), _short(intent.get("name")), "intent")
    add(slot.get("next"), "", "next")
    add(slot.get("to"), "", "jump")
    add(slot.get("fallback"), "fallback", "fallback")
    add(slot.get("on_error"), "on_error", "error")
    if slot.get("type") == "button_menu" and "fallback" not in slot and slot.get("id"):
        add(slot.get("id"), "fallback", "fallback")  # the menu shown again
    return found


def _rule_text(cond: Any) -> str:
    if isinstance(cond, Mapping):
        if "var" in cond:
            value = cond.get("value")
            return f"{cond['var']} {cond.get('op', '?')}" + ("" if value is None else f" {value}")
        for key in ("all", "any", "not"):
            if key in cond:
                return key
    return ""


def _summary(slot: Mapping[str, Any]) -> str:
    kind = slot.get("type")
    for key in ("text", "variable", "url", "prompt", "to"):
        if slot.get(key):
            prefix = "→ " if key == "variable" else ""
            return prefix + _short(slot[key])
    if kind == "intent":
        return f"{len(slot.get('intents') or [])} intents"
    if kind == "memory":
        return _short(", ".join(slot.get("set") or {}))
    return ""


def build_graph(doc: Mapping[str, Any]) -> Graph:
    """The graph of an agent document (tolerant: a broken document gives the graph it can)."""
    slots = [s for s in doc.get("slots") or [] if isinstance(s, Mapping) and isinstance(s.get("id"), str)]
    ids = {s["id"] for s in slots}
    start = str(doc.get("start") or "")
    on_timeout = doc.get("on_timeout") if isinstance(doc.get("on_timeout"), str) else None
    edges: list[Edge] = []
    for slot in slots:
        for target, label, kind in _edges_of(slot):
            edges.append(Edge(slot["id"], target, label, kind, dangling=target not in ids))  # type: ignore[arg-type]
    reached = _reach([start, *([on_timeout] if on_timeout else [])], edges)
    nodes = [
        Node(
            id=s["id"],
            kind=str(s.get("type") or "?"),
            label=_summary(s),
            reachable=s["id"] in reached,
            start=s["id"] == start,
        )
        for s in slots
    ]
    return Graph(
        name=str(doc.get("name") or ""), start=start, nodes=nodes, edges=edges, on_timeout=on_timeout
    )


def _reach(roots: list[str], edges: list[Edge]) -> set[str]:
    out: dict[str, list[str]] = {}
    for edge in edges:
        out.setdefault(edge.source, []).append(edge.target)
    reached = set(roots)
    queue = deque(roots)
    while queue:
        for target in out.get(queue.popleft(), []):
            if target not in reached:
                reached.add(target)
                queue.append(target)
    return reached


def render(graph: Graph, fmt: Format) -> str:
    """The graph as Graphviz dot, Mermaid flowchart or SVG text."""
    if fmt == "dot":
        return render_dot(graph)
    if fmt == "mermaid":
        return render_mermaid(graph)
    if fmt == "svg":
        return render_svg(graph)
    raise ValueError(f"unknown graph format {fmt!r} (one of {', '.join(FORMATS)})")


# -- dot ---------------------------------------------------------------------------------------------


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render_dot(graph: Graph) -> str:
    lines = [f"digraph {_dot_quote(graph.name or 'agent')} {{", "  rankdir=TB;", "  node [shape=box];"]
    for node in graph.nodes:
        attrs = [f"label={_dot_quote(_node_text(node))}"]
        if node.start:
            attrs.append("penwidth=2")
        if not node.reachable:
            attrs.append('style=dashed color=gray fontcolor=gray xlabel="unreachable"')
        lines.append(f"  {_dot_quote(node.id)} [{' '.join(attrs)}];")
    if graph.on_timeout:
        lines.append('  "(timeout)" [shape=ellipse label="session timeout"];')
        lines.append(f'  "(timeout)" -> {_dot_quote(graph.on_timeout)} [style=dotted label="on_timeout"];')
    for edge in graph.edges:
        attrs = [f"label={_dot_quote(edge.label)}"] if edge.label else []
        if edge.kind == "error":
            attrs.append("color=red")
        if edge.kind == "fallback":
            attrs.append("style=dashed")
        if edge.dangling:
            attrs.append('color=red fontcolor=red xlabel="missing"')
        suffix = f" [{' '.join(attrs)}]" if attrs else ""
        lines.append(f"  {_dot_quote(edge.source)} -> {_dot_quote(edge.target)}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _node_text(node: Node) -> str:
    head = f"{node.id} ({node.kind})"
    return f"{head}\n{node.label}" if node.label else head


# -- mermaid -------------------------------------------------------------------------------------------


def _mermaid_text(text: str) -> str:
    # Mermaid has no escape for quotes inside a quoted label: use its entity codes.
    return text.replace('"', "#quot;").replace("\n", "<br/>")


def render_mermaid(graph: Graph) -> str:
    ids = {node.id: f"n{i}" for i, node in enumerate(graph.nodes)}
    lines = ["flowchart TD"]
    for node in graph.nodes:
        lines.append(f'  {ids[node.id]}["{_mermaid_text(_node_text(node))}"]')
    extra = 0
    for edge in graph.edges:
        if edge.target not in ids:
            ids[edge.target] = f"x{extra}"
            extra += 1
            lines.append(f'  {ids[edge.target]}["{_mermaid_text(edge.target)} (missing)"]:::missing')
    if graph.on_timeout and graph.on_timeout in ids:
        lines.append('  timeout(("session timeout"))')
        lines.append(f"  timeout -. on_timeout .-> {ids[graph.on_timeout]}")
    for edge in graph.edges:
        arrow = "-.->" if edge.kind == "fallback" else "-->"
        label = f'|"{_mermaid_text(edge.label)}"|' if edge.label else ""
        lines.append(f"  {ids[edge.source]} {arrow}{label} {ids[edge.target]}")
    lines.append("  classDef unreachable stroke-dasharray: 5 5,color:#888,stroke:#888;")
    lines.append("  classDef missing stroke:#c00,color:#c00;")
    lines.append("  classDef start stroke-width:3px;")
    for node in graph.nodes:
        if not node.reachable:
            lines.append(f"  class {ids[node.id]} unreachable;")
        if node.start:
            lines.append(f"  class {ids[node.id]} start;")
    return "\n".join(lines) + "\n"


# -- svg ---------------------------------------------------------------------------------------------

_BOX_W: Final = 200
_BOX_H: Final = 46
_GAP_X: Final = 40
_GAP_Y: Final = 70


def _layers(graph: Graph) -> list[list[str]]:
    """Nodes in rows by their distance from `start` (unreachable ones in a last row)."""
    out: dict[str, list[str]] = {}
    for edge in graph.edges:
        out.setdefault(edge.source, []).append(edge.target)
    known = {n.id for n in graph.nodes}
    depth: dict[str, int] = {}
    roots = [r for r in (graph.start, graph.on_timeout) if r and r in known]
    queue = deque(roots)
    for root in roots:
        depth.setdefault(root, 0)
    while queue:
        current = queue.popleft()
        for target in out.get(current, []):
            if target in known and target not in depth:
                depth[target] = depth[current] + 1
                queue.append(target)
    rows: dict[int, list[str]] = {}
    last = max(depth.values(), default=-1) + 1
    for node in graph.nodes:
        rows.setdefault(depth.get(node.id, last), []).append(node.id)
    return [rows[k] for k in sorted(rows)]


def render_svg(graph: Graph) -> str:
    """A plain, dependency-free layout: rows by distance from start, edges as labelled lines."""
    rows = _layers(graph)
    width = max((len(r) for r in rows), default=1) * (_BOX_W + _GAP_X) + _GAP_X
    height = len(rows) * (_BOX_H + _GAP_Y) + _GAP_Y
    pos: dict[str, tuple[int, int]] = {}
    for r, row in enumerate(rows):
        offset = (width - len(row) * (_BOX_W + _GAP_X) + _GAP_X) // 2
        for c, node_id in enumerate(row):
            pos[node_id] = (offset + c * (_BOX_W + _GAP_X), _GAP_Y // 2 + r * (_BOX_H + _GAP_Y))
    nodes = {n.id: n for n in graph.nodes}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(graph.name or 'agent')}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/></marker></defs>',
    ]
    for edge in graph.edges:
        if edge.source not in pos or edge.target not in pos:
            continue
        (x1, y1), (x2, y2) = pos[edge.source], pos[edge.target]
        colour = "#c00" if edge.kind == "error" else "#555"
        dash = ' stroke-dasharray="4 3"' if edge.kind == "fallback" else ""
        attrs = (
            f'class="edge edge-{edge.kind}" data-source="{escape(edge.source)}" '
            f'data-target="{escape(edge.target)}"'
        )
        if edge.source == edge.target:
            cx, cy = x1 + _BOX_W, y1 + _BOX_H // 2
            parts.append(
                f'<path {attrs} d="M {cx} {cy - 8} C {cx + 30} {cy - 20}, '
                f'{cx + 30} {cy + 20}, {cx} {cy + 8}" '
                f'fill="none" stroke="{colour}"{dash} marker-end="url(#arrow)"/>'
            )
            lx, ly = cx + 32, cy + 4
        else:
            sx, sy = x1 + _BOX_W // 2, y1 + (_BOX_H if y2 > y1 else 0)
            tx, ty = x2 + _BOX_W // 2, y2 + (0 if y2 > y1 else _BOX_H)
            if y1 == y2:
                sy, ty = y1 + _BOX_H // 2, y2 + _BOX_H // 2
                sx, tx = (x1 + _BOX_W, x2) if x2 > x1 else (x1, x2 + _BOX_W)
            parts.append(
                f'<line {attrs} x1="{sx}" y1="{sy}" x2="{tx}" y2="{ty}" stroke="{colour}"{dash} '
                'marker-end="url(#arrow)"/>'
            )
            lx, ly = (sx + tx) // 2, (sy + ty) // 2
        if edge.label:
            parts.append(
                f'<text x="{lx}" y="{ly}" fill="{colour}" font-size="10">{escape(edge.label)}</text>'
            )
    for node_id, (x, y) in pos.items():
        node = nodes[node_id]
        stroke = "#999" if not node.reachable else "#222"
        dash = ' stroke-dasharray="5 4"' if not node.reachable else ""
        width_attr = 3 if node.start else 1
        css = "node" + (" unreachable" if not node.reachable else "") + (" start" if node.start else "")
        parts.append(f'<g class="{css}" data-id="{escape(node.id)}">')
        parts.append(
            f'<rect x="{x}" y="{y}" width="{_BOX_W}" height="{_BOX_H}" rx="6" fill="#fff" '
            f'stroke="{stroke}" stroke-width="{width_attr}"{dash}/>'
        )
        head = f"{node.id} ({node.kind})" + (" — unreachable" if not node.reachable else "")
        parts.append(f'<text x="{x + 8}" y="{y + 18}" font-weight="bold">{escape(_short(head))}</text>')
        if node.label:
            parts.append(f'<text x="{x + 8}" y="{y + 36}">{escape(node.label)}</text>')
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
